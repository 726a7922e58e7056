//! The one output layer: a table for people (columns chosen with `--format`, `--no-header` for
//! scripts), or `-o json`, the API's body as it came (a list as the JSON array of its items).

use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Clone)]
pub struct Output {
    pub format: Format,
    pub no_header: bool,
    /// `--format col1,col2`: keys of the objects (`a.b` reaches into one).
    pub columns: Option<Vec<String>>,
}

impl Output {
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// One object: its JSON, or a one-row table.
    pub fn one(&self, v: &Value, default_columns: &[&str]) {
        if self.json() {
            print_json(v);
        } else {
            self.table(std::slice::from_ref(v), default_columns);
        }
    }

    /// A list: the items' JSON array, or a table of them.
    pub fn list(&self, items: &[Value], default_columns: &[&str]) {
        if self.json() {
            print_json(&Value::Array(items.to_vec()));
        } else {
            self.table(items, default_columns);
        }
    }

    /// The list at `v`, an array in an answer (`page["items"]`); an absent one is empty.
    pub fn list_of(&self, v: &Value, default_columns: &[&str]) {
        self.list(v.as_array().map_or(&[][..], |a| a), default_columns);
    }

    fn table(&self, rows: &[Value], default_columns: &[&str]) {
        let columns: Vec<String> = match &self.columns {
            Some(c) => c.clone(),
            None => default_columns.iter().map(|c| c.to_string()).collect(),
        };
        let mut t = Table::new();
        t.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Disabled);
        if !self.no_header {
            t.set_header(columns.iter().map(|c| c.to_uppercase()));
        }
        for row in rows {
            t.add_row(columns.iter().map(|c| cell(lookup(row, c))));
        }
        let text = t.to_string();
        for line in text.lines() {
            // The preset pads every cell with a space on either side.
            println!("{}", line.strip_prefix(' ').unwrap_or(line).trim_end());
        }
    }
}

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("a Value always serializes"));
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.iter().all(|x| !x.is_object()) => {
            a.iter().map(|x| cell(Some(x))).collect::<Vec<_>>().join(",")
        }
        // A list of objects (a store's nodes): how many.
        Some(Value::Array(a)) => a.len().to_string(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn cells_show_values_as_people_read_them() {
        let v = json!({"name": "a", "n": 3, "tags": ["x", "y"], "nodes": [{}, {}], "job": {"id": "j"}, "none": null});
        assert_eq!(cell(lookup(&v, "name")), "a");
        assert_eq!(cell(lookup(&v, "n")), "3");
        assert_eq!(cell(lookup(&v, "tags")), "x,y");
        assert_eq!(cell(lookup(&v, "nodes")), "2");
        assert_eq!(cell(lookup(&v, "job.id")), "j");
        assert_eq!(cell(lookup(&v, "none")), "");
        assert_eq!(cell(lookup(&v, "missing")), "");
    }
}
