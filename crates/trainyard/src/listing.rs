//! Listing: filters, pages and the pagination every front end shows (the services sort and
//! page; front ends only pass the numbers on).

use serde::{Deserialize, Serialize};
use trainyard_core::schedule::ScheduleStatus;
use trainyard_core::{Error, Result, ValidationError};

/// Largest page a listing returns.
pub const MAX_PAGE_SIZE: u32 = 100;
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// Which page: from 1, of 1..=[`MAX_PAGE_SIZE`] items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    pub page: u32,
    pub page_size: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            page: 1,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl PageRequest {
    pub fn new(page: u32, page_size: u32) -> Self {
        PageRequest { page, page_size }
    }

    /// Every item on one page (for front ends that show all).
    pub fn all() -> Self {
        PageRequest {
            page: 1,
            page_size: u32::MAX,
        }
    }

    /// Page from 1; size 1..=MAX_PAGE_SIZE (or [`PageRequest::all`]).
    pub fn check(&self) -> Result<()> {
        if self.page == 0 {
            return Err(Error::Validation(ValidationError::field(
                "page",
                "starts at 1",
            )));
        }
        if self.page_size == 0 || (self.page_size > MAX_PAGE_SIZE && self.page_size != u32::MAX) {
            return Err(Error::Validation(ValidationError::field(
                "page_size",
                format!("must be 1 to {MAX_PAGE_SIZE}"),
            )));
        }
        Ok(())
    }
}

/// The spec's "pagination" object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct Pagination {
    pub page: u32,
    pub page_size: u32,
    pub total: u64,
    pub total_pages: u64,
    pub has_next: bool,
    pub has_previous: bool,
}

impl Pagination {
    pub fn new(page: u32, page_size: u32, total: u64) -> Self {
        let total_pages = total.div_ceil(u64::from(page_size.max(1)));
        Pagination {
            page,
            page_size,
            total,
            total_pages,
            has_next: u64::from(page) < total_pages,
            has_previous: page > 1,
        }
    }
}

/// One page of a sorted list and where it lies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub pagination: Pagination,
}

impl<T> Page<T> {
    /// Slices one page out of a list held in memory.
    pub fn of(items: Vec<T>, req: PageRequest) -> Page<T> {
        let total = items.len() as u64;
        let skip = (u64::from(req.page) - 1).saturating_mul(u64::from(req.page_size));
        let out = items
            .into_iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(req.page_size as usize)
            .collect();
        Page {
            items: out,
            pagination: Pagination::new(req.page, req.page_size, total),
        }
    }
}

/// Filters of the schedule list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScheduleFilter {
    /// Only schedules of this model endpoint.
    pub ml_model: Option<String>,
    pub status: Option<ScheduleStatus>,
}
