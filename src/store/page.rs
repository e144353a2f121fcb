//! Pages of a list: up to a limit of matching items in key order, where
//! to continue, and a bound on the candidates one call examines.

use std::sync::Arc;

/// One page of a list, and whether more items match after it.
#[derive(Debug)]
pub(crate) struct Page<T, K> {
    pub(crate) items: Vec<Arc<T>>,
    /// The cursor to continue from, when more items match.
    pub(crate) next: Option<K>,
}

/// Most candidates one list call examines. Past it the page ends early,
/// with a cursor after the last candidate examined (AIP-158 lets a page
/// hold fewer items than asked, or none): a filter that matches little
/// cannot make one call scan the whole store.
pub(super) const SCAN_BUDGET: usize = 10_000;

/// Takes up to `limit` of the candidates that `matching` accepts, in key
/// order, and notes where to continue when more may follow.
pub(super) fn page<'a, T: 'a, K: Copy>(
    candidates: impl Iterator<Item = K>,
    limit: usize,
    budget: usize,
    matching: impl Fn(K) -> Option<&'a Arc<T>>,
) -> Page<T, K> {
    let mut items = Vec::new();
    let mut last_item = None;
    let mut candidates = candidates.peekable();
    let mut examined = 0;
    while let Some(key) = candidates.next() {
        examined += 1;
        if let Some(item) = matching(key) {
            if items.len() == limit {
                // Another match follows the full page.
                return Page {
                    items,
                    next: last_item,
                };
            }
            items.push(Arc::clone(item));
            last_item = Some(key);
        }
        if examined >= budget {
            let next = candidates.peek().map(|_| key);
            return Page { items, next };
        }
    }
    Page { items, next: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Candidates 0..n, of which the even ones match.
    fn even_page(n: u64, limit: usize, budget: usize) -> (Vec<u64>, Option<u64>) {
        let items: Vec<Arc<u64>> = (0..n).map(Arc::new).collect();
        let page = page(0..n, limit, budget, |k| {
            items.get(k as usize).filter(|item| ***item % 2 == 0)
        });
        (page.items.iter().map(|i| **i).collect(), page.next)
    }

    #[test]
    fn a_full_page_continues_after_its_last_item() {
        assert_eq!(even_page(100, 3, 1_000), (vec![0, 2, 4], Some(4)));
        assert_eq!(even_page(6, 3, 1_000), (vec![0, 2, 4], None));
    }

    #[test]
    fn a_spent_budget_ends_the_page_early_after_the_last_candidate_examined() {
        assert_eq!(
            even_page(100, 50, 15),
            (vec![0, 2, 4, 6, 8, 10, 12, 14], Some(14))
        );
        assert_eq!(
            even_page(100, 50, 16),
            (vec![0, 2, 4, 6, 8, 10, 12, 14], Some(15))
        );
        assert_eq!(even_page(15, 50, 15), ((0..15).step_by(2).collect(), None));
    }
}
