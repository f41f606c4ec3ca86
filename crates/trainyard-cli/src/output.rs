//! The one renderer: the global `--format table|json` (`--json` is its alias) decides whether
//! a command prints its table or the JSON of what the facade returned.

use serde::Serialize;
use trainyard::core::names::Named;

use crate::error::CliError;

/// How results are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Table,
    Json,
}

impl Named for Format {
    const ALL: &'static [Self] = &[Format::Table, Format::Json];

    fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
        }
    }
}

/// Prints a command's result in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: Format,
}

impl Output {
    pub fn new(format: Format, json_alias: bool) -> Self {
        Output {
            format: if json_alias { Format::Json } else { format },
        }
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// `value` as JSON, or what `table` prints.
    pub fn render<T: Serialize>(&self, value: &T, table: impl FnOnce()) -> Result<(), CliError> {
        if self.json() {
            print_json(value)
        } else {
            table();
            Ok(())
        }
    }
}

pub fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Failed(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Left-aligned columns, two spaces apart.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// The line under a paged model listing: `N models (page P of T)`.
pub fn print_models_page(pg: &trainyard::Pagination) {
    println!(
        "\n{} models (page {} of {})",
        pg.total,
        pg.page,
        pg.total_pages.max(1)
    );
}

pub fn opt_f64(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.4}"))
}
