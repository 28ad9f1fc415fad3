//! A strict parser of the OpenMetrics text format (the subset a server without exemplars or
//! timestamps may write, which is what `prometheus-client` writes for counters, gauges, info
//! and histograms), for asserting a scrape exactly: every line must be a `# HELP`, `# TYPE`,
//! `# UNIT` or sample line of the family it belongs to, families are contiguous and appear once,
//! the text ends with `# EOF`, and histograms are consistent.

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// One sample: its full name (with the suffix), its labels in order, its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (`krmx_links_accepted_total`).
    pub name: String,
    /// The labels, in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// One metric family with its descriptors and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family's name (`krmx_links_accepted`).
    pub name: String,
    /// `counter`, `gauge`, `histogram`, `info`, ...
    pub kind: String,
    /// The help text, unescaped.
    pub help: Option<String>,
    /// The unit, if declared.
    pub unit: Option<String>,
    /// The samples, in order.
    pub samples: Vec<Sample>,
}

/// A parsed exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape {
    /// The families, in order.
    pub families: Vec<Family>,
}

impl Scrape {
    /// The family called `name`.
    #[must_use]
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|family| family.name == name)
    }

    /// The value of the sample `name` with exactly these labels (in any order).
    #[must_use]
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeSet<(&str, &str)> = labels.iter().copied().collect();
        self.families
            .iter()
            .flat_map(|family| &family.samples)
            .find(|sample| {
                sample.name == name
                    && sample
                        .labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect::<BTreeSet<_>>()
                        == wanted
            })
            .map(|sample| sample.value)
    }

    /// Every sample of the family `name` as (labels, value), labels as `k=v` joined by `,`.
    #[must_use]
    pub fn samples_of(&self, family: &str) -> Vec<(String, f64)> {
        self.family(family)
            .map(|family| {
                family
                    .samples
                    .iter()
                    .map(|sample| {
                        let mut labels = String::new();
                        for (k, v) in &sample.labels {
                            if !labels.is_empty() {
                                labels.push(',');
                            }
                            let _ = write!(labels, "{k}={v}");
                        }
                        (labels, sample.value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Parses `text` strictly; the error names the line and what is wrong.
///
/// # Errors
/// Any deviation from the format.
pub fn parse(text: &str) -> Result<Scrape, String> {
    let Some(body) = text.strip_suffix("# EOF\n").or(text.strip_suffix("# EOF")) else {
        return Err("the text does not end with `# EOF`".to_owned());
    };
    if !body.is_empty() && !body.ends_with('\n') {
        return Err("`# EOF` is not on a line of its own".to_owned());
    }
    let mut families: Vec<Family> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut series = BTreeSet::new();
    for (n, line) in body.lines().enumerate() {
        let at = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if line.is_empty() {
            return Err(at("empty line"));
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest.split_once(' ').ok_or_else(|| at("bare comment"))?;
            let (name, value) = match keyword {
                "HELP" => rest.split_once(' ').unwrap_or((rest, "")),
                _ => rest
                    .split_once(' ')
                    .ok_or_else(|| at("descriptor without value"))?,
            };
            if !is_metric_name(name) {
                return Err(at("invalid metric name"));
            }
            if families.last().is_none_or(|family| family.name != name) {
                if !seen.insert(name.to_owned()) {
                    return Err(at("family appears twice"));
                }
                families.push(Family {
                    name: name.to_owned(),
                    kind: "unknown".to_owned(),
                    help: None,
                    unit: None,
                    samples: Vec::new(),
                });
            }
            let family = families.last_mut().ok_or_else(|| at("no family"))?;
            if !family.samples.is_empty() {
                return Err(at("descriptor after samples"));
            }
            match keyword {
                "HELP" if family.help.is_none() => family.help = Some(unescape(value, false)?),
                "TYPE" if family.kind == "unknown" => {
                    let kinds = [
                        "counter",
                        "gauge",
                        "histogram",
                        "gaugehistogram",
                        "stateset",
                        "info",
                        "summary",
                        "unknown",
                    ];
                    if !kinds.contains(&value) {
                        return Err(at("unknown type"));
                    }
                    family.kind = value.to_owned();
                }
                "UNIT" if family.unit.is_none() => {
                    if value.is_empty() || !name.ends_with(&format!("_{value}")) {
                        return Err(at("the family name does not end with its unit"));
                    }
                    family.unit = Some(value.to_owned());
                }
                "HELP" | "TYPE" | "UNIT" => return Err(at("descriptor given twice")),
                _ => return Err(at("unknown descriptor")),
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(at("comment that is no descriptor"));
        }
        let sample = sample(line).map_err(|error| at(&error))?;
        let family = families
            .last_mut()
            .ok_or_else(|| at("sample before any descriptor"))?;
        let suffixes: &[&str] = match family.kind.as_str() {
            "counter" => &["_total", "_created"],
            "gauge" | "unknown" => &[""],
            "info" => &["_info"],
            "histogram" => &["_bucket", "_count", "_sum", "_created"],
            _ => return Err(at("a type this parser does not take")),
        };
        let suffix = sample
            .name
            .strip_prefix(family.name.as_str())
            .filter(|suffix| suffixes.contains(suffix))
            .ok_or_else(|| at("sample name does not belong to its family"))?;
        if suffix == "_bucket" && !sample.labels.iter().any(|(k, _)| k == "le") {
            return Err(at("bucket without le"));
        }
        if (family.kind == "counter" || suffix == "_count" || suffix == "_bucket")
            && (sample.value.is_nan() || sample.value < 0.0)
        {
            return Err(at("negative or NaN count"));
        }
        let mut key = sample.labels.clone();
        key.sort();
        if !series.insert((sample.name.clone(), key)) {
            return Err(at("the same series twice"));
        }
        family.samples.push(sample);
    }
    for family in &families {
        if family.kind == "histogram" {
            check_histogram(family)?;
        }
    }
    Ok(Scrape { families })
}

fn check_histogram(family: &Family) -> Result<(), String> {
    let name = &family.name;
    let mut last = 0.0;
    let mut last_bound = f64::NEG_INFINITY;
    let mut inf = None;
    for sample in family
        .samples
        .iter()
        .filter(|sample| sample.name.ends_with("_bucket"))
    {
        let bound = sample
            .labels
            .iter()
            .find(|(k, _)| k == "le")
            .map(|(_, v)| parse_value(v))
            .transpose()?
            .ok_or_else(|| format!("{name}: bucket without le"))?;
        if bound <= last_bound || sample.value < last {
            return Err(format!("{name}: buckets not increasing"));
        }
        last_bound = bound;
        last = sample.value;
        if bound == f64::INFINITY {
            inf = Some(sample.value);
        }
    }
    let count = family
        .samples
        .iter()
        .find(|sample| sample.name == format!("{name}_count"))
        .map(|sample| sample.value);
    match (inf, count) {
        (Some(inf), Some(count)) if inf == count => Ok(()),
        _ => Err(format!("{name}: no +Inf bucket equal to the count")),
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Unescapes `\\`, `\n` and (in label values) `\"`; any other escape is an error.
fn unescape(text: &str, quotes: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('"') => out.push('"'),
                other => return Err(format!("invalid escape \\{other:?}")),
            },
            '"' if quotes => return Err("unescaped quote".to_owned()),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
            && !text.is_empty() =>
        {
            text.parse().map_err(|_| format!("invalid number {text:?}"))
        }
        _ => Err(format!("invalid number {text:?}")),
    }
}

/// `name{label="value",...} value`: no timestamps and no exemplars are expected.
fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| "sample without value".to_owned())?;
    let (name, mut rest) = line.split_at(name_end);
    if !is_metric_name(name) {
        return Err("invalid sample name".to_owned());
    }
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            if !labels.is_empty() {
                rest = rest
                    .strip_prefix(',')
                    .ok_or_else(|| "labels not separated by a comma".to_owned())?;
            }
            let (key, after) = rest
                .split_once("=\"")
                .ok_or_else(|| "label without =\"".to_owned())?;
            if !is_label_name(key) {
                return Err(format!("invalid label name {key:?}"));
            }
            // The value ends at the first quote not escaped.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in after.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let end = end.ok_or_else(|| "unterminated label value".to_owned())?;
            let value = unescape(&after[..end], true)?;
            if labels.iter().any(|(k, _): &(String, String)| k == key) {
                return Err(format!("label {key} twice"));
            }
            labels.push((key.to_owned(), value));
            rest = &after[end + 1..];
        }
    }
    let value = rest
        .strip_prefix(' ')
        .ok_or_else(|| "no space before the value".to_owned())?;
    if value.contains(' ') {
        return Err("a timestamp or exemplar, which this server does not write".to_owned());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value: parse_value(value)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_a_well_formed_exposition() {
        let text = "# HELP a_x An x.\n# TYPE a_x counter\na_x_total{k=\"v \\\"q\\\"\"} 3\n\
            # TYPE a_t_seconds histogram\n# UNIT a_t_seconds seconds\na_t_seconds_sum 0.5\n\
            a_t_seconds_count 2\na_t_seconds_bucket{le=\"0.1\"} 1\n\
            a_t_seconds_bucket{le=\"+Inf\"} 2\n# TYPE a_g gauge\na_g 1.5\n# EOF\n";
        let scrape = parse(text).unwrap();
        assert_eq!(scrape.value("a_x_total", &[("k", "v \"q\"")]), Some(3.0));
        assert_eq!(scrape.value("a_g", &[]), Some(1.5));
        assert_eq!(
            scrape.family("a_t_seconds").unwrap().unit.as_deref(),
            Some("seconds")
        );
    }

    #[test]
    fn refuses_every_deviation() {
        let bad = [
            "# TYPE a counter\na_total 1\n",                           // no EOF
            "# TYPE a counter\na_total 1\n\n# EOF\n",                  // empty line
            "# TYPE a counter\na 1\n# EOF\n",                          // counter without _total
            "# TYPE a counter\na_total -1\n# EOF\n",                   // negative counter
            "# TYPE a counter\na_total 1 123\n# EOF\n",                // timestamp
            "# TYPE a gauge\na{k=\"v} 1\n# EOF\n",                     // unterminated
            "# TYPE a gauge\na{k=\"v\",k=\"w\"} 1\n# EOF\n",           // label twice
            "# TYPE a gauge\na 1\na 2\n# EOF\n",                       // series twice
            "# TYPE a gauge\n# TYPE b gauge\n# TYPE a gauge\n# EOF\n", // family twice
            "# TYPE a wat\n# EOF\n",                                   // unknown type
            "# TYPE a gauge\n# UNIT a seconds\n# EOF\n",               // unit not in the name
            "# TYPE a gauge\nb 1\n# EOF\n",                            // sample of another family
            "# TYPE a gauge\na one\n# EOF\n",                          // not a number
            "# a comment\n# EOF\n",                                    // a plain comment
            "# TYPE h histogram\nh_count 2\nh_bucket{le=\"+Inf\"} 1\n# EOF\n", // inconsistent
        ];
        for text in bad {
            assert!(parse(text).is_err(), "taken: {text:?}");
        }
    }
}
