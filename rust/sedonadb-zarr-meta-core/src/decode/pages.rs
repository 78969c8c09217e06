//! Memory for the values buffers a scan hands to the host.
//!
//! A full scan fills fresh buffers of megabytes per chunk and the host keeps
//! them until the query ends, so their memory is new to the process on every
//! scan: with 4 KiB pages, faulting it in costs as much as the copy that fills
//! it. Where the kernel offers transparent huge pages on request
//! (`/sys/kernel/mm/transparent_hugepage/enabled` = `madvise`, a common
//! default), the whole 2 MiB pages inside such a buffer are asked for as huge
//! pages: one fault instead of 512. Only pages the buffer spans entirely are
//! advised, so no memory beyond the buffer is ever touched.

/// The huge page size; only whole, aligned ones inside a buffer are advised.
const HUGE_PAGE: usize = 2 << 20;

/// A values buffer with room for `capacity` bytes, its whole 2 MiB pages
/// advised as huge pages where the kernel supports it.
pub fn values_buffer(capacity: usize) -> Vec<u8> {
    let buffer = Vec::with_capacity(capacity);
    advise_huge_pages(buffer.as_ptr(), buffer.capacity());
    buffer
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(start: *const u8, len: usize) {
    if len < HUGE_PAGE {
        return;
    }
    let first = (start as usize).next_multiple_of(HUGE_PAGE);
    let end = (start as usize + len) / HUGE_PAGE * HUGE_PAGE;
    if first < end {
        // SAFETY: the range lies inside an allocation this buffer owns;
        // MADV_HUGEPAGE is advice only (no contents change), and a kernel
        // without transparent huge pages refuses it harmlessly.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_start: *const u8, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_keep_their_capacity_and_contents() {
        for capacity in [0, 10, HUGE_PAGE - 1, 3 * HUGE_PAGE + 17] {
            let mut b = values_buffer(capacity);
            assert!(b.capacity() >= capacity);
            b.extend((0..capacity).map(|i| i as u8));
            assert!(b.iter().enumerate().all(|(i, v)| *v == i as u8));
        }
    }
}
