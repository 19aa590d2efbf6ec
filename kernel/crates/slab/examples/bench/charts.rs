//! SVG charts of one run, written beside the text output (plotters, SVG backend):
//! * `ns_per_op.svg`: ns per operation of each allocator in workloads (a), (b) and (c), on a
//!   log scale (linked_list_allocator is 100-1000x slower in (b));
//! * `scaling.svg`: the 2-thread over 1-thread churn throughput of (d) for each allocator, with
//!   the run's compute and memory controls beside it (what the machine gave);
//! * `space.svg`: for each kmalloc class, the bytes of its slabs and of its live objects
//!   (rounded to the class) once (c) has filled its million objects, on a log scale.
//!
//! Where: `--charts=DIR`, else `$SHEAF_BENCH_CHARTS`, else `target/bench-charts` (the target
//! directory the bench binary was built in).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

/// The figures of a run that the charts show, collected as the workloads print them.
#[derive(Default)]
pub(crate) struct Figures {
    /// (workload, allocator, ns per operation).
    pub(crate) ns: Vec<(&'static str, &'static str, f64)>,
    /// (allocator, churn 2/1 ratio, compute control 2/1, memory control 2/1) of (d).
    pub(crate) scaling: Vec<(&'static str, f64, f64, f64)>,
    /// (kmalloc class name, bytes of its slabs, class bytes of its live objects) in (c).
    pub(crate) space: Vec<(String, usize, usize)>,
}

/// The charts' directory (see the module docs).
pub(crate) fn charts_dir(args: &[String]) -> PathBuf {
    if let Some(d) = args.iter().find_map(|a| a.strip_prefix("--charts=")) {
        return d.into();
    }
    if let Some(d) = std::env::var_os("SHEAF_BENCH_CHARTS") {
        return d.into();
    }
    // target/<profile>/examples/bench -> target/bench-charts
    std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.parent()?.parent()?.join("bench-charts")))
        .unwrap_or_else(|| "bench-charts".into())
}

/// Colours of the bars, by series.
const COLOURS: [RGBColor; 5] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
];

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Writes the charts that have figures into `dir`; returns the files written.
pub(crate) fn write(figs: &Figures, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    if !figs.ns.is_empty() {
        let p = dir.join("ns_per_op.svg");
        ns_per_op(figs, &p)?;
        written.push(p);
    }
    if !figs.scaling.is_empty() {
        let p = dir.join("scaling.svg");
        scaling(figs, &p)?;
        written.push(p);
    }
    if !figs.space.is_empty() {
        let p = dir.join("space.svg");
        space(figs, &p)?;
        written.push(p);
    }
    Ok(written)
}

/// The distinct values of `key` over `items`, in first-seen order.
fn distinct<T>(items: &[T], key: impl Fn(&T) -> &'static str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for i in items {
        if !out.contains(&key(i)) {
            out.push(key(i));
        }
    }
    out
}

/// Grouped bars: `groups` along x, `series` within each; `value(group, series)`, if any.
struct Bars<'a> {
    title: &'a str,
    y_desc: &'a str,
    groups: Vec<String>,
    series: Vec<String>,
    value: &'a dyn Fn(usize, usize) -> Option<f64>,
    /// Formats a bar's label.
    label: &'a dyn Fn(f64) -> String,
    /// Where the legend goes (where the bars are low).
    legend: SeriesLabelPosition,
}

/// Draws grouped bars on a linear or log y axis, with a legend, a label on each bar and, for
/// linear charts, dashed horizontal reference lines `(y, name)`.
fn bars<Y>(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    b: &Bars<'_>,
    y: Y,
    refs: &[(f64, &str)],
) -> Result
where
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    root.fill(&WHITE)?;
    let (ng, ns) = (b.groups.len(), b.series.len());
    let mut chart = ChartBuilder::on(root)
        .caption(b.title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..ng as f64, y)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(b.y_desc)
        .draw()?;
    let y0 = chart.y_range().start;
    let width = 0.8 / ns as f64;
    for (s, name) in b.series.iter().enumerate() {
        let colour = COLOURS[s % COLOURS.len()];
        let rects: Vec<_> = (0..ng)
            .filter_map(|g| {
                let v = (b.value)(g, s)?;
                let x0 = g as f64 + 0.1 + s as f64 * width;
                Some(Rectangle::new(
                    [(x0, y0), (x0 + width * 0.9, v)],
                    colour.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(rects)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
        let labels: Vec<_> = (0..ng)
            .filter_map(|g| {
                let v = (b.value)(g, s)?;
                let x = g as f64 + 0.1 + s as f64 * width + width * 0.45;
                Some(Text::new(
                    (b.label)(v),
                    (x, v),
                    ("sans-serif", 11).into_font().color(&BLACK).pos(
                        plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Center,
                            plotters::style::text_anchor::VPos::Bottom,
                        ),
                    ),
                ))
            })
            .collect();
        chart.draw_series(labels)?;
    }
    for &(v, name) in refs {
        chart
            .draw_series(std::iter::once(PathElement::new(
                [(0.0, v), (ng as f64, v)],
                ShapeStyle::from(&BLACK.mix(0.6)).stroke_width(1),
            )))?
            .label(name)
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], BLACK.mix(0.6)));
    }
    chart
        .configure_series_labels()
        .position(b.legend.clone())
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    // The group names under the x axis, centred on their groups.
    for (g, name) in b.groups.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(g as f64 + 0.5, y0));
        root.draw(&Text::new(
            name.clone(),
            (px, py + 8),
            ("sans-serif", 14).into_font().color(&BLACK).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Top,
                ),
            ),
        ))?;
    }
    root.present()?;
    Ok(())
}

fn ns_per_op(figs: &Figures, path: &Path) -> Result {
    let workloads = distinct(&figs.ns, |f| f.0);
    let allocators = distinct(&figs.ns, |f| f.1);
    let find = |g: usize, s: usize| {
        figs.ns
            .iter()
            .find(|f| f.0 == workloads[g] && f.1 == allocators[s])
            .map(|f| f.2)
    };
    let max = figs.ns.iter().map(|f| f.2).fold(1.0, f64::max);
    let root = SVGBackend::new(path, (1000, 520)).into_drawing_area();
    bars(
        &root,
        &Bars {
            title: "ns per operation (lower is better; log scale)",
            y_desc: "ns per op (pair in (a), free + alloc in (b), (c))",
            groups: workloads.iter().map(|w| w.to_string()).collect(),
            series: allocators.iter().map(|a| a.to_string()).collect(),
            value: &find,
            label: &|v| format!("{v:.1}"),
            legend: SeriesLabelPosition::UpperRight,
        },
        (0.5f64..max * 4.0).log_scale(),
        &[],
    )
}

fn scaling(figs: &Figures, path: &Path) -> Result {
    let find = |g: usize, s: usize| {
        let (_, churn, control, mem) = figs.scaling[g];
        Some([churn, control, mem][s])
    };
    let root = SVGBackend::new(path, (1000, 520)).into_drawing_area();
    bars(
        &root,
        &Bars {
            title: "(d) churn throughput, 2 threads over 1 thread (higher is better)",
            y_desc: "2-thread / 1-thread throughput",
            groups: figs.scaling.iter().map(|f| f.0.to_string()).collect(),
            series: vec![
                "allocator churn".into(),
                "compute control".into(),
                "memory control".into(),
            ],
            value: &find,
            label: &|v| format!("{v:.2}x"),
            legend: SeriesLabelPosition::UpperRight,
        },
        0f64..2.6,
        &[(2.0, "2.0x: perfect"), (1.9, "1.9x: target")],
    )
}

fn space(figs: &Figures, path: &Path) -> Result {
    let find = |g: usize, s: usize| {
        let (_, held, live) = figs.space[g];
        let v = [held, live][s] as f64 / 1024.0;
        (v > 0.0).then_some(v)
    };
    let max = figs
        .space
        .iter()
        .map(|f| f.1.max(f.2) as f64 / 1024.0)
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, (1000, 520)).into_drawing_area();
    bars(
        &root,
        &Bars {
            title: "(c) space per kmalloc class, 1,000,000 live objects of 8..=2048 B (log scale)",
            y_desc: "KiB",
            groups: figs
                .space
                .iter()
                .map(|(name, _, _)| name.trim_start_matches("kmalloc-").to_string())
                .collect(),
            series: vec![
                "slabs held (num_slabs x slab size)".into(),
                "live objects (count x class size)".into(),
            ],
            value: &find,
            label: &|v| {
                if v >= 1024.0 {
                    format!("{:.0}M", v / 1024.0)
                } else {
                    format!("{v:.0}K")
                }
            },
            legend: SeriesLabelPosition::UpperLeft,
        },
        (1f64..max * 6.0).log_scale(),
        &[],
    )
}
