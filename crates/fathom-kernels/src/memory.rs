//! Memory placement hints for large arrays read in random order.

use std::mem::MaybeUninit;

/// Below this many bytes a region is left alone: huge pages pay off only when an array
/// spans far more pages than the CPU's TLB holds.
const MIN_BYTES: usize = 4 << 20;

/// Asks the operating system to back `region` with transparent huge pages (Linux
/// `madvise(MADV_HUGEPAGE)`; a no-op elsewhere, for regions under 4 MiB, or when the
/// kernel declines). Call it on memory that is reserved but not yet written (a `Vec`'s
/// spare capacity), so the pages are huge from the first touch.
///
/// Graph search and k-means assignment read rows of a large array in random order; with
/// 4 KiB pages nearly every row costs a TLB miss and a page walk, with 2 MiB pages the
/// TLB covers gigabytes. Contents are never changed.
pub fn advise_huge_pages<T>(region: &mut [MaybeUninit<T>]) {
    let len = std::mem::size_of_val(region);
    if len < MIN_BYTES {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = region.as_mut_ptr() as usize;
        let aligned = start.next_multiple_of(PAGE);
        let end = (start + len) & !(PAGE - 1);
        if end > aligned {
            // SAFETY: [aligned, end) lies inside `region`, memory this process owns and
            // that stays allocated for the call; MADV_HUGEPAGE only changes how the kernel
            // backs those pages, never their contents or validity, and an error (e.g. a
            // kernel without THP) is harmless and ignored.
            unsafe {
                libc::madvise(
                    aligned as *mut libc::c_void,
                    end - aligned,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advising_keeps_contents_and_tolerates_any_region() {
        let mut v: Vec<f32> = Vec::with_capacity(3 << 20);
        advise_huge_pages(v.spare_capacity_mut());
        v.extend((0..3 << 20).map(|i| i as f32));
        assert_eq!(v[12345], 12345.0);
        let mut small: Vec<u8> = Vec::with_capacity(10);
        advise_huge_pages(small.spare_capacity_mut());
        advise_huge_pages::<u64>(&mut []);
    }
}
