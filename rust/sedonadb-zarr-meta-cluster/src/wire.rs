//! Arrow schemas as bytes (an Arrow IPC stream with no batches): every type,
//! nested fields and metadata included, which `DataType`'s text form does
//! not carry back.

use std::io::Cursor;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::{DataFusionError, Result};

pub fn schema_to_bytes(schema: &Schema) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, schema)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}

pub fn schema_from_bytes(bytes: &[u8]) -> Result<SchemaRef> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)
        .map_err(|e| DataFusionError::Plan(format!("a schema from another role could not be read: {e}")))?;
    Ok(reader.schema())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Fields};

    use super::*;

    #[test]
    fn nested_types_and_metadata_come_back() {
        let meta = HashMap::from([("ARROW:extension:name".to_string(), "geoarrow.wkb".to_string())]);
        let item = Field::new("item", DataType::Binary, true).with_metadata(meta.clone());
        let schema = Schema::new(vec![
            Field::new("g", DataType::Binary, true).with_metadata(meta),
            Field::new("l", DataType::List(Arc::new(item.clone())), true),
            Field::new("s", DataType::Struct(Fields::from(vec![item])), false),
            Field::new("g", DataType::Utf8, true),
        ]);
        assert_eq!(schema_from_bytes(&schema_to_bytes(&schema).unwrap()).unwrap().as_ref(), &schema);
        assert!(schema_from_bytes(b"junk").is_err());
    }
}
