//! The process's global allocator: mimalloc, called through its plain entry points for the
//! layouts every mimalloc block already satisfies.
//!
//! The `mimalloc` crate's `MiMalloc` sends every allocation to `mi_malloc_aligned`. In
//! mimalloc 3 that call takes a slow path whenever the size class's free list is empty and
//! the size is not a power of two: it over-allocates from a larger class (microsoft/mimalloc
//! issue 889). On the request path that was about 1,100 instructions per request, a third of
//! what the allocator cost. `mi_malloc` returns blocks aligned to the machine word for every
//! size, and to 16 bytes for sizes of 16 and more (`MI_MAX_ALIGN_SIZE`), so a layout whose
//! alignment is at most that needs no aligned call; any other layout still gets one.
//!
//! This is the binary's only `unsafe` code; the library forbids it.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment of every block `mi_malloc` returns: a machine word.
const WORD: usize = std::mem::size_of::<usize>();
/// mimalloc's `MI_MAX_ALIGN_SIZE`: blocks of at least this size are aligned to it.
const MAX_ALIGN_SIZE: usize = 16;

/// mimalloc as the global allocator, preferring the unaligned entry points.
pub(crate) struct MiMalloc;

/// Whether `mi_malloc(size)` is already aligned enough for `align`.
#[inline]
fn plain(size: usize, align: usize) -> bool {
    align <= WORD || (align <= MAX_ALIGN_SIZE && size >= align)
}

// SAFETY: every method hands its caller's contract on to the mimalloc function for it; a block
// from any of them may be freed or resized by any other, since `mi_free` and `mi_realloc*`
// accept blocks from both the plain and the aligned entry points.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: FFI calls with a size and a power-of-two alignment from a valid layout.
        unsafe {
            if plain(layout.size(), layout.align()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if plain(layout.size(), layout.align()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator; the new size keeps the layout's alignment.
        unsafe {
            if plain(new_size, layout.align()) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}
