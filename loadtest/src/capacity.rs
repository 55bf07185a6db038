//! `capacity`: run a scenario at increasing offered rates until p99 passes the bound or
//! errors/loss appear; print a table, write a CSV and an SVG plot (throughput vs p99).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::opts::CapOpts;
use crate::scenario;
use crate::stats::Report;

pub fn rates(c: &CapOpts) -> Vec<f64> {
    if !c.rates.is_empty() {
        return c.rates.iter().copied().filter(|r| *r > 0.0).collect();
    }
    let f = if c.rate_factor > 1.0 {
        c.rate_factor
    } else {
        2.0
    };
    (0..c.steps_max.clamp(1, 50))
        .map(|i| c.rate_start * f.powi(i as i32))
        .collect()
}

const CSV_HEADER: &str = "offered_rate,delivered_per_sec,p50_ms,p99_ms,p999_ms,max_ms,sent,delivered,lost,duplicated,errors,server_cpu_s,per_server_core_sec,client_cpu_s";

fn csv_row(r: &Report) -> String {
    let o = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    format!(
        "{},{:.1},{:.3},{:.3},{:.3},{:.3},{},{},{},{},{},{},{},{:.2}",
        r.offered_rate,
        r.delivered_per_sec,
        r.latency_ms.p50,
        r.latency_ms.p99,
        r.latency_ms.p999,
        r.latency_ms.max,
        r.sent,
        r.delivered,
        r.lost,
        r.duplicated,
        r.errors,
        o(r.server_cpu_s),
        o(r.per_server_core_sec),
        r.client_cpu_s
    )
}

pub async fn run(c: &CapOpts) -> Vec<Report> {
    let mut out: Vec<Report> = Vec::new();
    let rs = rates(c);
    println!(
        "capacity {} over {} ({}{})",
        c.target.name(),
        c.opts.transport.name(),
        c.opts.url(),
        if c.opts.transport.is_tls() {
            format!(", TLS resumption {}", c.opts.tls_resumption.name())
        } else {
            String::new()
        }
    );
    println!(
        "{:>10} {:>12} {:>9} {:>9} {:>9} {:>8} {:>8} {:>12}",
        "offered/s", "delivered/s", "p50 ms", "p99 ms", "p99.9 ms", "lost", "errors", "per core-s"
    );
    for (i, &rate) in rs.iter().enumerate() {
        let mut o = c.opts.clone();
        o.rate = rate;
        let r = scenario::run(c.target, &o).await;
        println!(
            "{:>10.0} {:>12.1} {:>9.3} {:>9.3} {:>9.3} {:>8} {:>8} {:>12}",
            rate,
            r.delivered_per_sec,
            r.latency_ms.p50,
            r.latency_ms.p99,
            r.latency_ms.p999,
            r.lost,
            r.errors,
            r.per_server_core_sec
                .map(|v| format!("{v:.0}"))
                .unwrap_or_else(|| "-".into())
        );
        let stop = r.latency_ms.p99 > c.p99_bound_ms || r.errors > 0 || r.lost > 0;
        out.push(r);
        if stop {
            println!(
                "stopped: p99 bound {} ms passed or errors/loss appeared",
                c.p99_bound_ms
            );
            break;
        }
        if i + 1 < rs.len() {
            tokio::time::sleep(Duration::from_secs(2)).await; // let the server settle
        }
    }
    let name = c.target.name();
    let csv = c
        .csv
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("capacity-{name}.csv")));
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for r in &out {
        s.push_str(&csv_row(r));
        s.push('\n');
    }
    match std::fs::write(&csv, s) {
        Ok(()) => println!("wrote {}", csv.display()),
        Err(e) => eprintln!("cannot write {}: {e}", csv.display()),
    }
    let svg = c
        .svg
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("capacity-{name}.svg")));
    match std::fs::write(&svg, plot(&out, name, c.p99_bound_ms)) {
        Ok(()) => println!("wrote {}", svg.display()),
        Err(e) => eprintln!("cannot write {}: {e}", svg.display()),
    }
    out
}

/// Throughput (x, linear) against p50 and p99 latency (y, log10), with the bound as a line.
pub fn plot(rows: &[Report], name: &str, bound_ms: f64) -> String {
    let (w, h, ml, mr, mt, mb) = (720.0, 440.0, 70.0, 20.0, 40.0, 50.0);
    let pw = w - ml - mr;
    let ph = h - mt - mb;
    let xmax = rows
        .iter()
        .map(|r| r.delivered_per_sec.max(r.offered_rate))
        .fold(1.0, f64::max)
        * 1.05;
    let lat = |v: f64| v.max(0.01);
    let ymin_l = rows
        .iter()
        .map(|r| lat(r.latency_ms.p50).log10())
        .fold(f64::INFINITY, f64::min)
        .min(bound_ms.log10())
        .floor();
    let ymax_l = rows
        .iter()
        .map(|r| lat(r.latency_ms.p99).log10())
        .fold(f64::NEG_INFINITY, f64::max)
        .max(bound_ms.log10())
        .ceil();
    let (ymin_l, ymax_l) = if ymin_l.is_finite() && ymax_l > ymin_l {
        (ymin_l, ymax_l)
    } else {
        (-2.0, 3.0)
    };
    let x = |v: f64| ml + v / xmax * pw;
    let y = |ms: f64| mt + ph - (lat(ms).log10() - ymin_l) / (ymax_l - ymin_l) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='12'>\
         <rect width='100%' height='100%' fill='white'/>\
         <text x='{}' y='20' text-anchor='middle' font-size='14'>aoba-loadtest capacity: {name} (delivered/s vs latency)</text>",
        w / 2.0
    );
    // axes and grid
    let _ = write!(
        s,
        "<line x1='{ml}' y1='{}' x2='{}' y2='{}' stroke='black'/>",
        mt + ph,
        ml + pw,
        mt + ph
    );
    let _ = write!(
        s,
        "<line x1='{ml}' y1='{mt}' x2='{ml}' y2='{}' stroke='black'/>",
        mt + ph
    );
    let mut e = ymin_l as i32;
    while e as f64 <= ymax_l {
        let v = 10f64.powi(e);
        let yy = y(v);
        let _ = write!(
            s,
            "<line x1='{ml}' y1='{yy:.1}' x2='{}' y2='{yy:.1}' stroke='#ddd'/><text x='{}' y='{:.1}' text-anchor='end'>{} ms</text>",
            ml + pw,
            ml - 6.0,
            yy + 4.0,
            v
        );
        e += 1;
    }
    for i in 0..=5 {
        let v = xmax * i as f64 / 5.0;
        let _ = write!(
            s,
            "<text x='{:.1}' y='{}' text-anchor='middle'>{:.0}</text>",
            x(v),
            mt + ph + 18.0,
            v
        );
    }
    let _ = write!(
        s,
        "<text x='{}' y='{}' text-anchor='middle'>delivered per second</text>",
        ml + pw / 2.0,
        h - 8.0
    );
    // bound
    let _ = write!(
        s,
        "<line x1='{ml}' y1='{b:.1}' x2='{}' y2='{b:.1}' stroke='red' stroke-dasharray='6,4'/><text x='{}' y='{:.1}' fill='red' text-anchor='end'>p99 bound {bound_ms} ms</text>",
        ml + pw,
        ml + pw - 4.0,
        y(bound_ms) - 4.0,
        b = y(bound_ms)
    );
    for (color, label, get) in [
        (
            "#1f77b4",
            "p50",
            (|r: &Report| r.latency_ms.p50) as fn(&Report) -> f64,
        ),
        ("#d62728", "p99", |r: &Report| r.latency_ms.p99),
    ] {
        let pts: Vec<String> = rows
            .iter()
            .map(|r| format!("{:.1},{:.1}", x(r.delivered_per_sec), y(get(r))))
            .collect();
        let _ = write!(
            s,
            "<polyline fill='none' stroke='{color}' stroke-width='2' points='{}'/>",
            pts.join(" ")
        );
        for r in rows {
            let _ = write!(
                s,
                "<circle cx='{:.1}' cy='{:.1}' r='3.5' fill='{color}'><title>{label} {:.3} ms at {:.0}/s (offered {:.0})</title></circle>",
                x(r.delivered_per_sec),
                y(get(r)),
                get(r),
                r.delivered_per_sec,
                r.offered_rate
            );
        }
    }
    let _ = write!(
        s,
        "<text x='{}' y='{}' fill='#1f77b4'>p50</text><text x='{}' y='{}' fill='#d62728'>p99</text></svg>",
        ml + 10.0,
        mt + 14.0,
        ml + 40.0,
        mt + 14.0
    );
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_renders() {
        let mut a = Report {
            offered_rate: 1000.0,
            delivered_per_sec: 990.0,
            ..Report::default()
        };
        a.latency_ms.p50 = 1.0;
        a.latency_ms.p99 = 5.0;
        let mut b = a.clone();
        b.offered_rate = 2000.0;
        b.delivered_per_sec = 1900.0;
        b.latency_ms.p99 = 250.0;
        let s = plot(&[a, b], "chat", 100.0);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<circle").count(), 4);
    }
}
