//! The top k of every row of a score matrix, in Rust: what `tf.math.top_k` returns (values in
//! descending order; of equal values the lower index first), without sorting the row. A row is
//! scanned once against the k-th best score so far; only the few candidates that beat it touch
//! the heap. Rows are spread over the cores.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A candidate in the heap; the heap's top is the worst kept one (lowest score, and of equal
/// scores the highest index, which `top_k` would drop first).
#[derive(Clone, Copy, PartialEq)]
struct Kept {
    score: f32,
    index: u32,
}

impl Eq for Kept {}

impl Ord for Kept {
    fn cmp(&self, other: &Self) -> Ordering {
        // "greater" = worse: lower score, then higher index
        other
            .score
            .total_cmp(&self.score)
            .then(self.index.cmp(&other.index))
    }
}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The top `k` of one row: `(index, score)` best first. `k` larger than the row gives the
/// whole row, sorted.
pub fn top_k_row(row: &[f32], k: usize, out: &mut Vec<(u32, f32)>) {
    out.clear();
    let k = k.min(row.len());
    if k == 0 {
        return;
    }
    let mut heap: BinaryHeap<Kept> = BinaryHeap::with_capacity(k + 1);
    for (i, &s) in row[..k].iter().enumerate() {
        heap.push(Kept {
            score: s,
            index: i as u32,
        });
    }
    // a later index only enters with a strictly better score (an equal one loses the tie)
    let mut worst = heap.peek().expect("k >= 1").score;
    for (i, &s) in row.iter().enumerate().skip(k) {
        if s > worst {
            heap.pop();
            heap.push(Kept {
                score: s,
                index: i as u32,
            });
            worst = heap.peek().expect("k >= 1").score;
        }
    }
    out.extend(
        heap.into_sorted_vec()
            .into_iter()
            .map(|c| (c.index, c.score)),
    );
}

/// The top `k` of each of the `rows` rows of `scores` (row-major, `cols` per row), rows spread
/// over up to `threads` threads. Returns one `(index, score)` list per row, best first.
pub fn top_k_rows(
    scores: &[f32],
    rows: usize,
    cols: usize,
    k: usize,
    threads: usize,
) -> Vec<Vec<(u32, f32)>> {
    assert_eq!(scores.len(), rows * cols, "a rows x cols score matrix");
    let mut out: Vec<Vec<(u32, f32)>> = vec![Vec::new(); rows];
    let threads = threads.clamp(1, rows.max(1));
    if threads == 1 {
        for (r, o) in out.iter_mut().enumerate() {
            top_k_row(&scores[r * cols..(r + 1) * cols], k, o);
        }
        return out;
    }
    let per = rows.div_ceil(threads);
    std::thread::scope(|s| {
        for (chunk, outs) in out.chunks_mut(per).enumerate() {
            s.spawn(move || {
                for (j, o) in outs.iter_mut().enumerate() {
                    let r = chunk * per + j;
                    top_k_row(&scores[r * cols..(r + 1) * cols], k, o);
                }
            });
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `tf.math.top_k` returns, by a full stable sort.
    fn by_sorting(row: &[f32], k: usize) -> Vec<(u32, f32)> {
        let mut v: Vec<(u32, f32)> = row
            .iter()
            .enumerate()
            .map(|(i, &s)| (i as u32, s))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(k);
        v
    }

    #[test]
    fn matches_a_full_sort_with_ties_broken_by_the_lower_index() {
        // many equal scores (ties across the k boundary), negative values, zeros
        let mut x = 12345u64;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x % 41) as f32 - 20.0) / 4.0
        };
        for (n, k) in [
            (1, 1),
            (5, 10),
            (100, 1),
            (1000, 10),
            (1000, 100),
            (5000, 64),
        ] {
            let row: Vec<f32> = (0..n).map(|_| rand()).collect();
            let mut got = Vec::new();
            top_k_row(&row, k, &mut got);
            assert_eq!(got, by_sorting(&row, k), "n={n} k={k}");
        }
        let mut got = vec![(9, 9.0)];
        top_k_row(&[], 3, &mut got);
        assert!(got.is_empty());
        top_k_row(&[1.0, 2.0], 0, &mut got);
        assert!(got.is_empty());
    }

    #[test]
    fn rows_spread_over_threads_answer_as_one_thread() {
        let (rows, cols, k) = (7, 300, 13);
        let scores: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919) % 1009) as f32 * 0.5)
            .collect();
        let one = top_k_rows(&scores, rows, cols, k, 1);
        for threads in [2, 3, 16] {
            assert_eq!(top_k_rows(&scores, rows, cols, k, threads), one);
        }
        for (r, got) in one.iter().enumerate() {
            assert_eq!(got, &by_sorting(&scores[r * cols..(r + 1) * cols], k));
        }
        assert!(top_k_rows(&[], 0, cols, k, 2).is_empty());
    }
}
