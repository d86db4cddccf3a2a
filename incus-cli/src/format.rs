//! Output formats shared by the list commands: `table` (Incus's bordered table), `compact`,
//! `csv`, `json` and `yaml`.

use crate::CliError;
use comfy_table::{Cell, CellAlignment, ContentLineStyle, LineStyle, Table, TableStyle};
use serde::Serialize;

/// Incus's table: `+`/`-`/`|` borders with a line between every row.
const INCUS: TableStyle = TableStyle::new()
    .top_border(LineStyle::new('+', '-', '+', '+'))
    .header_lines(ContentLineStyle::new('|', '|', '|'))
    .header_separator(LineStyle::new('+', '-', '+', '+'))
    .content_lines(ContentLineStyle::new('|', '|', '|'))
    .row_separator(LineStyle::new('+', '-', '+', '+'))
    .bottom_border(LineStyle::new('+', '-', '+', '+'));

/// A list output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Bordered table.
    Table,
    /// Table without borders.
    Compact,
    /// Comma-separated values, no header.
    Csv,
    /// JSON of the API objects.
    Json,
    /// YAML of the API objects.
    Yaml,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Renders rows under `header` in `format` (for `json`/`yaml`, `objects` is rendered instead).
pub fn render<T: Serialize>(
    format: Format,
    header: &[String],
    rows: Vec<Vec<String>>,
    objects: &T,
) -> Result<String, CliError> {
    Ok(match format {
        Format::Json => {
            let mut s = serde_json::to_string(objects)?;
            s.push('\n');
            s
        }
        Format::Yaml => to_yaml(objects)?,
        Format::Csv => rows
            .iter()
            .map(|r| {
                let mut l = r.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",");
                l.push('\n');
                l
            })
            .collect(),
        Format::Table | Format::Compact => {
            let mut t = Table::new();
            if format == Format::Table {
                t.load_style(INCUS);
            } else {
                t.load_style(comfy_table::presets::NOTHING);
            }
            // Centred as Incus's table writer centres: an odd leftover space goes right.
            let width = |text: &str| text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
            let widths: Vec<usize> = (0..header.len())
                .map(|i| {
                    rows.iter()
                        .filter_map(|r| r.get(i))
                        .map(|c| width(c))
                        .chain([width(&header[i])])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            t.set_header(header.iter().zip(&widths).map(|(h, w)| {
                let gap = w.saturating_sub(h.chars().count());
                let text = format!("{}{h}{}", " ".repeat(gap / 2), " ".repeat(gap - gap / 2));
                Cell::new(text).set_alignment(CellAlignment::Left)
            }));
            for r in rows {
                t.add_row(r);
            }
            let mut s = t.to_string();
            s.push('\n');
            s
        }
    })
}

/// YAML of any serialisable value.
pub fn to_yaml<T: Serialize>(v: &T) -> Result<String, CliError> {
    serde_saphyr::to_string(v).map_err(|e| CliError::msg(format!("YAML: {e}")))
}
