//! Typed query results, decoded from the Prometheus HTTP API's JSON.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A successful answer to an instant or range query.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResponse {
    /// The result, typed by its `resultType`.
    pub data: QueryData,
    /// Warnings Prometheus attached (for example about partial data); empty when there were none.
    pub warnings: Vec<String>,
}

/// The four result types of the Prometheus query API.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub enum QueryData {
    /// One sample per series, at the evaluation time (instant queries).
    Vector(Vec<InstantSample>),
    /// Many samples per series (range queries, or range selectors in instant queries).
    Matrix(Vec<RangeSeries>),
    /// A single number (for example `scalar(...)` or `1 + 1`).
    Scalar(Sample),
    /// A single string literal.
    String(StringSample),
}

impl QueryData {
    /// The wire name of the result type (`vector`, `matrix`, `scalar`, `string`).
    pub fn result_type(&self) -> &'static str {
        match self {
            Self::Vector(_) => "vector",
            Self::Matrix(_) => "matrix",
            Self::Scalar(_) => "scalar",
            Self::String(_) => "string",
        }
    }
}

/// A series' labels, `__name__` included when the series has one.
pub type Labels = BTreeMap<String, String>;

/// One series of an instant vector.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct InstantSample {
    /// The series' labels.
    pub metric: Labels,
    /// Its sample at the evaluation time.
    pub value: Sample,
}

/// One series of a range vector.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct RangeSeries {
    /// The series' labels.
    pub metric: Labels,
    /// Its samples, oldest first.
    pub values: Vec<Sample>,
}

/// A timestamped number. Prometheus sends values as strings so that `NaN`, `+Inf` and `-Inf` survive JSON;
/// they decode to the matching `f64`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "(f64, String)")]
pub struct Sample {
    /// Unix time in seconds.
    pub timestamp: f64,
    /// The value.
    pub value: f64,
}

impl TryFrom<(f64, String)> for Sample {
    type Error = String;

    fn try_from((timestamp, raw): (f64, String)) -> Result<Self, Self::Error> {
        Ok(Self {
            timestamp,
            value: parse_value(&raw)?,
        })
    }
}

/// A timestamped string (the `string` result type).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "(f64, String)")]
pub struct StringSample {
    /// Unix time in seconds.
    pub timestamp: f64,
    /// The string.
    pub value: String,
}

impl From<(f64, String)> for StringSample {
    fn from((timestamp, value): (f64, String)) -> Self {
        Self { timestamp, value }
    }
}

/// Parses a sample value the way Prometheus formats it (Go's `strconv.FormatFloat`, plus `NaN`/`±Inf`).
fn parse_value(raw: &str) -> Result<f64, String> {
    match raw {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        other => other
            .parse::<f64>()
            .map_err(|e| format!("sample value `{other}` is not a number: {e}")),
    }
}

/// The JSON envelope every API answer comes in.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    pub status: String,
    pub data: Option<QueryData>,
    #[serde(rename = "errorType")]
    pub error_type: Option<String>,
    pub error: Option<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(json: &str) -> Envelope {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn vector_with_special_values() {
        let env = decode(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"a":"1"},"value":[10.5,"NaN"]},
                {"metric":{"a":"2"},"value":[10.5,"+Inf"]},
                {"metric":{"a":"3"},"value":[10.5,"-Inf"]},
                {"metric":{"a":"4"},"value":[10.5,"1e-3"]}]}}"#,
        );
        let Some(QueryData::Vector(v)) = env.data else {
            panic!("not a vector")
        };
        assert!(v[0].value.value.is_nan());
        assert_eq!(v[1].value.value, f64::INFINITY);
        assert_eq!(v[2].value.value, f64::NEG_INFINITY);
        assert_eq!(v[3].value.value, 0.001);
        assert_eq!(v[3].value.timestamp, 10.5);
        assert_eq!(v[0].metric["a"], "1");
    }

    #[test]
    fn matrix_scalar_string_and_warnings() {
        let env = decode(
            r#"{"status":"success","warnings":["partial"],"data":{"resultType":"matrix","result":[
                {"metric":{},"values":[[1,"1"],[2,"2"]]}]}}"#,
        );
        assert_eq!(env.warnings, vec!["partial".to_owned()]);
        let Some(QueryData::Matrix(m)) = env.data else {
            panic!("not a matrix")
        };
        assert_eq!(m[0].values.len(), 2);
        assert_eq!(m[0].values[1].value, 2.0);

        let env =
            decode(r#"{"status":"success","data":{"resultType":"scalar","result":[3,"4.5"]}}"#);
        assert_eq!(
            env.data,
            Some(QueryData::Scalar(Sample {
                timestamp: 3.0,
                value: 4.5
            }))
        );

        let env =
            decode(r#"{"status":"success","data":{"resultType":"string","result":[3,"hi"]}}"#);
        let Some(QueryData::String(s)) = env.data else {
            panic!("not a string")
        };
        assert_eq!(s.value, "hi");
    }

    #[test]
    fn garbage_value_is_an_error() {
        let res = serde_json::from_str::<Envelope>(
            r#"{"status":"success","data":{"resultType":"scalar","result":[3,"four"]}}"#,
        );
        assert!(res.is_err());
    }
}
