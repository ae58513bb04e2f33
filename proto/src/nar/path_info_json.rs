//! Parses `nix path-info --json` output from every Nix landfall meets:
//! Nix 2.8–2.18 print a JSON array of objects with a `path` field and
//! `sha256:<nix32>` hashes; Nix 2.19+ print an object keyed by path with SRI
//! hashes (`null` for an invalid path); the newer "v2" format uses store path
//! base names and structured hashes and content addresses. Unknown fields are
//! ignored; a missing required field is an error.

use serde_json::{Map, Value};

use super::hash::NarHash;
use super::store_path::{PathInfo, StorePath};

/// Why path-info JSON could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum PathInfoJsonError {
    /// Not JSON at all.
    #[error("nix path-info printed invalid JSON")]
    Json(#[source] serde_json::Error),
    /// JSON of an unexpected shape.
    #[error("Unexpected nix path-info JSON: {0}")]
    Shape(String),
    /// Nix reports a path as not valid in its store.
    #[error("{0} is not valid in the local Nix store")]
    NotValid(String),
}

fn shape(msg: impl Into<String>) -> PathInfoJsonError {
    PathInfoJsonError::Shape(msg.into())
}

/// Parses the output of `nix path-info --json [--recursive] …`.
pub fn parse_path_info_json(bytes: &[u8]) -> Result<Vec<PathInfo>, PathInfoJsonError> {
    let v: Value = serde_json::from_slice(bytes).map_err(PathInfoJsonError::Json)?;
    let mut out = Vec::new();
    match v {
        Value::Array(items) => {
            for item in items {
                let obj = item
                    .as_object()
                    .ok_or_else(|| shape("array item is not an object"))?;
                let path = obj
                    .get("path")
                    .and_then(Value::as_str)
                    .ok_or_else(|| shape("array item without \"path\""))?;
                if obj.get("valid") == Some(&Value::Bool(false)) {
                    return Err(PathInfoJsonError::NotValid(path.to_owned()));
                }
                out.push(parse_one(path, obj)?);
            }
        }
        Value::Object(map) => {
            for (path, item) in map {
                match item {
                    Value::Null => return Err(PathInfoJsonError::NotValid(path)),
                    Value::Object(obj) => out.push(parse_one(&path, &obj)?),
                    _ => return Err(shape(format!("value for {path} is not an object"))),
                }
            }
        }
        _ => return Err(shape("neither an array nor an object")),
    }
    Ok(out)
}

fn store_path(text: &str) -> Result<StorePath, PathInfoJsonError> {
    StorePath::parse(text).map_err(|e| shape(e.to_string()))
}

fn hash(v: &Value, what: &str) -> Result<NarHash, PathInfoJsonError> {
    match v {
        Value::String(s) => NarHash::parse(s).map_err(|e| shape(e.to_string())),
        Value::Object(o) => {
            let algo = o
                .get("algorithm")
                .or_else(|| o.get("algo"))
                .and_then(Value::as_str);
            let text = o
                .get("hash")
                .or_else(|| o.get("digest"))
                .and_then(Value::as_str);
            match (algo, text) {
                (Some("sha256"), Some(t)) => NarHash::parse(&format!("sha256-{t}"))
                    .or_else(|_| NarHash::parse(&format!("sha256:{t}")))
                    .map_err(|e| shape(e.to_string())),
                _ => Err(shape(format!("{what} is not a sha256 hash: {v}"))),
            }
        }
        _ => Err(shape(format!("{what} is not a hash: {v}"))),
    }
}

fn content_address(v: &Value) -> Result<Option<String>, PathInfoJsonError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Object(o) => {
            let method = o.get("method").and_then(Value::as_str);
            let h = hash(o.get("hash").unwrap_or(&Value::Null), "ca hash")?;
            let prefix = match method {
                Some("nar") => "fixed:r:",
                Some("flat") => "fixed:",
                Some("text") => "text:",
                _ => return Err(shape(format!("unknown content-address method in {v}"))),
            };
            Ok(Some(format!("{prefix}{}", h.to_nix32())))
        }
        _ => Err(shape(format!("ca is neither a string nor an object: {v}"))),
    }
}

fn parse_one(path: &str, obj: &Map<String, Value>) -> Result<PathInfo, PathInfoJsonError> {
    let path = store_path(path)?;
    let nar_hash = hash(
        obj.get("narHash")
            .ok_or_else(|| shape(format!("{path}: no narHash")))?,
        "narHash",
    )?;
    let nar_size = obj
        .get("narSize")
        .and_then(Value::as_u64)
        .ok_or_else(|| shape(format!("{path}: no narSize")))?;
    let mut references = obj
        .get("references")
        .and_then(Value::as_array)
        .ok_or_else(|| shape(format!("{path}: no references")))?
        .iter()
        .map(|r| {
            r.as_str()
                .ok_or_else(|| shape(format!("{path}: a reference is not a string")))
                .and_then(store_path)
        })
        .collect::<Result<Vec<_>, _>>()?;
    references.sort();
    references.dedup();
    let deriver = match obj.get("deriver") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(store_path(s)?),
        Some(other) => return Err(shape(format!("{path}: deriver {other}"))),
    };
    let signatures = match obj.get("signatures") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| shape(format!("{path}: a signature is not a string")))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(shape(format!("{path}: signatures {other}"))),
    };
    let ca = content_address(obj.get("ca").unwrap_or(&Value::Null))?;
    Ok(PathInfo {
        path,
        nar_hash,
        nar_size,
        references,
        deriver,
        signatures,
        ca,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-a";
    const B: &str = "/nix/store/1mdqa9w1p6cmli6976v4wi0sw9r4p5pr-b";
    const D: &str = "/nix/store/2mdqa9w1p6cmli6976v4wi0sw9r4p5pr-a.drv";
    const H32: &str = "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73";
    const SRI: &str = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    fn expected() -> Vec<PathInfo> {
        vec![PathInfo {
            path: StorePath::parse(A).unwrap(),
            nar_hash: NarHash::parse(H32).unwrap(),
            nar_size: 120,
            references: vec![StorePath::parse(A).unwrap(), StorePath::parse(B).unwrap()],
            deriver: Some(StorePath::parse(D).unwrap()),
            signatures: vec!["cache.example.org-1:abc=".into()],
            ca: None,
        }]
    }

    #[test]
    fn nix_2_8_array_form() {
        let json = format!(
            r#"[{{"path":"{A}","narHash":"{H32}","narSize":120,"references":["{B}","{A}"],
                "deriver":"{D}","registrationTime":1,"ultimate":true,
                "signatures":["cache.example.org-1:abc="]}}]"#
        );
        assert_eq!(parse_path_info_json(json.as_bytes()).unwrap(), expected());
    }

    #[test]
    fn current_nix_object_form_with_sri() {
        let json = format!(
            r#"{{"{A}":{{"narHash":"{SRI}","narSize":120,"references":["{A}","{B}"],
                "deriver":"{D}","ca":null,"signatures":["cache.example.org-1:abc="]}}}}"#
        );
        assert_eq!(parse_path_info_json(json.as_bytes()).unwrap(), expected());
    }

    #[test]
    fn v2_form_with_base_names_and_structured_hashes() {
        let base = |p: &str| p.trim_start_matches("/nix/store/").to_owned();
        let json = format!(
            r#"{{"{}":{{"version":2,"narHash":{{"algorithm":"sha256","format":"base64","hash":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}},
                "narSize":120,"references":["{}","{}"],"deriver":"{}",
                "signatures":["cache.example.org-1:abc="],"ca":null}}}}"#,
            base(A),
            base(A),
            base(B),
            base(D)
        );
        assert_eq!(parse_path_info_json(json.as_bytes()).unwrap(), expected());
    }

    #[test]
    fn invalid_paths_are_errors() {
        let json = format!(r#"{{"{A}":null}}"#);
        assert!(matches!(
            parse_path_info_json(json.as_bytes()),
            Err(PathInfoJsonError::NotValid(_))
        ));
        let json = format!(r#"[{{"path":"{A}","valid":false}}]"#);
        assert!(matches!(
            parse_path_info_json(json.as_bytes()),
            Err(PathInfoJsonError::NotValid(_))
        ));
    }

    #[test]
    fn structured_content_address() {
        let json = format!(
            r#"{{"{A}":{{"narHash":"{SRI}","narSize":1,"references":[],
                "ca":{{"method":"nar","hash":"{SRI}"}}}}}}"#
        );
        let info = &parse_path_info_json(json.as_bytes()).unwrap()[0];
        assert_eq!(info.ca.as_deref(), Some(&*format!("fixed:r:{H32}")));
    }
}
