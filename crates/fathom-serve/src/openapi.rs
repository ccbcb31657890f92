//! The OpenAPI 3 description of the API, served at `/openapi.json`.

use serde_json::{Value, json};

use crate::api::MAX_ITEMS_PER_REQUEST;
use crate::store::MAX_ID_BYTES;

fn body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": nullable_options(schema) } } })
}

/// A body that may be left out (as if it were `{}`).
fn optional_body(schema: Value) -> Value {
    let mut b = body(schema);
    b["required"] = json!(false);
    b
}

/// Marks every optional property `nullable`, at every depth: the server reads a `null`
/// as the field left out. A property an object (or one of its `oneOf` choices) requires
/// stays non-null.
fn nullable_options(mut schema: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                let required: Vec<String> = map
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| {
                        r.iter()
                            .filter_map(|f| f.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(Value::Object(props)) = map.get_mut("properties") {
                    for (name, prop) in props.iter_mut() {
                        if !required.contains(name) && prop.is_object() {
                            prop["nullable"] = json!(true);
                            // OpenAPI 3.0: an enum must list null itself.
                            if let Some(Value::Array(values)) = prop.get_mut("enum") {
                                values.push(Value::Null);
                            }
                        }
                    }
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut schema);
    schema
}

fn answers(ok: &str) -> Value {
    json!({
        "200": { "description": ok },
        "400": { "description": "malformed body or invalid argument (also: a search over the query × vector limit, metadata over its cap, a search parameter the index lacks)" },
        "404": { "description": "no such collection" },
        "405": { "description": "the route has no such method" },
        "401": { "description": "the server requires an API key (Authorization: Bearer KEY or x-api-key) and none or an unknown one was sent" },
        "403": { "description": "the API key's role (read, write, admin) is below what the route needs" },
        "409": { "description": "a collection exists with another definition, or a name differing only in case; an item id exists already (POST items)" },
        "413": { "description": "body over the size limit" },
        "422": { "description": "vector length or count does not match, or a value outside f32 or a squared norm above f32::MAX / 4" },
        "503": { "description": "shed: the collection's search queue is full or the deadline cannot be met (Retry-After says when to retry); or the search was cancelled because the server is stopping" }
    })
}

/// The 200 answer of an add or upsert, with the link that reads back its first item
/// (`ids[0]` of the answer into `GET /collections/{name}/items/{id}`).
fn with_item_links(mut answers: Value) -> Value {
    answers["200"]["links"] = json!({ "GetFirstItem": {
        "operationId": "getItem",
        "parameters": { "name": "$request.path.name", "id": "$response.body#/ids/0" },
        "description": "the first item the request added or replaced" } });
    answers
}

/// What the document states of the running server: its limits and models.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `--max-top-k`.
    pub max_top_k: usize,
    /// Whether it embeds texts (`--model`, or a CLIP `--image-model`): `text`/`texts`
    /// appear in the bodies only then.
    pub texts: bool,
    /// Whether it embeds images (`--image-model`): `image`/`images` appear only then.
    pub images: bool,
}

/// The document. Each schema states what the server checks on its own (bounds, required
/// and unknown fields, the one-of choices), so that a request valid by the document is
/// refused only for what depends on stored state: a dimension or metric the collection
/// does not have, a factory string or filter that does not parse, a missing model.
pub fn document(limits: Limits) -> Value {
    let vector = json!({ "type": "array", "items": { "type": "number" } });
    let vectors = json!({ "type": "array", "items": vector, "minItems": 1 });
    let name = json!([{ "name": "name", "in": "path", "required": true, "schema": {
        "type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$" } }]);
    let id = json!({ "oneOf": [
        { "type": "integer", "minimum": 0, "maximum": u64::MAX },
        { "type": "string", "minLength": 1, "maxLength": MAX_ID_BYTES, "description": "1 to 256 bytes of UTF-8" }] });
    let ids = json!({ "type": "array", "items": id });
    let page_limit = json!({ "type": "integer", "minimum": 1, "maximum": MAX_ITEMS_PER_REQUEST, "default": 100 });
    let offset = json!({ "type": "integer", "minimum": 0, "maximum": usize::MAX, "default": 0 });
    let cursor = json!({ "type": "string", "pattern": "^[0-9]{1,19}$", "description": "the \"next_cursor\" of the previous page" });
    let count = json!({ "type": "integer", "minimum": 1, "maximum": 1_000_000_000 });
    let filter = json!({ "type": "object", "description": "metadata filter: MongoDB/Chroma ($eq $ne $in $nin $gt $gte $lt $lte $exists $and $or $not) or Qdrant (must/should/must_not, match value/any/except, range, is_empty, is_null) style; see docs/SERVE.md" });
    // Exactly one way of giving the items or the queries, among those this server takes.
    let one_of = |fields: &[(&str, &Value, bool)]| -> Value {
        fields
            .iter()
            .filter(|(_, _, offered)| *offered)
            .map(|(f, schema, _)| json!({ "required": [f], "properties": { *f: schema } }))
            .collect()
    };
    let text = json!({ "type": "string", "description": "needs --model, or a CLIP --image-model" });
    let image = json!({ "type": "string", "description": "base64 or a data URL of a JPEG, PNG or WebP file (needs --image-model)" });
    let texts = json!({ "type": "array", "items": text, "minItems": 1 });
    let images = json!({ "type": "array", "items": image, "minItems": 1 });
    // An add of no items is accepted (and adds none).
    let (rows, texts_in, images_in) = (
        json!({ "type": "array", "items": vector }),
        json!({ "type": "array", "items": text }),
        json!({ "type": "array", "items": image, "description": "or send multipart/form-data with file fields named images" }),
    );
    let (t, i) = (limits.texts, limits.images);
    let mut items_props = json!({ "ids": ids, "vectors": rows,
        "metadata": { "type": "array", "items": { "type": "object" }, "description": "one object per item" } });
    let mut search_props = json!({ "vector": vector, "vectors": vectors });
    if t {
        items_props["texts"] = texts_in.clone();
        search_props["text"] = text.clone();
        search_props["texts"] = texts.clone();
    }
    if i {
        items_props["images"] = images_in.clone();
        search_props["image"] = image.clone();
        search_props["images"] = images.clone();
    }
    let items_body = json!({
        "type": "object", "additionalProperties": false,
        "oneOf": one_of(&[("vectors", &rows, true), ("texts", &texts_in, t), ("images", &images_in, i)]),
        "properties": items_props });
    let search_choices = one_of(&[
        ("vector", &vector, true),
        ("vectors", &vectors, true),
        ("text", &text, t),
        ("texts", &texts, t),
        ("image", &image, i),
        ("images", &images, i),
    ]);
    for (field, schema) in [
        (
            "top_k",
            json!({ "type": "integer", "minimum": 1, "maximum": limits.max_top_k, "default": 10 }),
        ),
        (
            "min_score",
            json!({ "type": "number", "description": "ip and cosine collections only" }),
        ),
        (
            "max_distance",
            json!({ "type": "number", "description": "l2 collections only" }),
        ),
        (
            "params",
            json!({ "type": "object", "additionalProperties": false, "properties": { "nprobe": count, "efSearch": count, "ef_search": count } }),
        ),
        ("filter", filter.clone()),
        ("filter_ids", ids.clone()),
        (
            "deadline_ms",
            json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX, "description": "answer 503 + Retry-After at once rather than wait past this (default --deadline-ms)" }),
        ),
        (
            "exact",
            json!({ "type": "boolean", "description": "search every stored vector exhaustively (the ground truth an approximate index is measured against); no params" }),
        ),
        (
            "with_metadata",
            json!({ "type": "boolean", "default": true, "description": "false leaves metadata out of the hits" }),
        ),
    ] {
        search_props[field] = schema;
    }
    let mut create_answers =
        answers("created (201) or already there with the same definition (200)");
    create_answers["201"] = json!({ "description": "created" });
    json!({
        "openapi": "3.0.3",
        "info": { "title": "fathom search service", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/health": { "get": { "summary": "status; per collection ntotal, dim, index, items, imbalance factor, where it was loaded from", "responses": answers("status") } },
            "/metrics": { "get": { "summary": "Prometheus text: requests and latency per route and status, in-flight requests, queries searched, vectors per collection", "responses": answers("metrics") } },
            "/openapi.json": { "get": { "summary": "this document", "responses": answers("the document") } },
            "/docs": { "get": { "summary": "an API page rendered from this document", "responses": answers("HTML") } },
            "/": { "get": { "summary": "the search page (also /ui): text, image and similar-item search over a collection, results with thumbnails", "responses": answers("HTML") } },
            "/snapshot": { "post": { "summary": "write a snapshot (database and indexes) now", "responses": answers("its directory") } },
            "/collections": { "get": { "summary": "every collection", "responses": answers("collections") } },
            "/collections/{name}": {
                "parameters": name,
                "get": { "summary": "describe", "responses": answers("the collection") },
                "put": { "summary": "create", "requestBody": body(json!({
                    "type": "object", "required": ["dim"], "additionalProperties": false,
                    "properties": { "dim": { "type": "integer", "minimum": 1, "maximum": 65536 },
                        "index": { "type": "string", "default": "Flat", "description": "Faiss factory string (Flat, HNSW32, IVF1024,Flat, IVF256,PQ16, …)" },
                        "metric": { "type": "string", "enum": ["l2", "ip", "cosine"], "default": "l2" } } })),
                    "responses": create_answers },
                "delete": { "summary": "drop with its items", "responses": answers("dropped") }
            },
            "/collections/{name}/items": {
                "parameters": name,
                "post": { "operationId": "addItems", "summary": "add items (vectors or texts, metadata, optional ids)", "requestBody": body(items_body.clone()),
                    "responses": with_item_links(answers("{\"ids\": […]} and, when a first batch trains an IVF index on fewer than 39 points per list, \"warnings\"; 409 when an id exists")) },
                "put": { "operationId": "upsertItems", "summary": "upsert items by id (replaces vector and metadata of existing ids)", "requestBody": body(items_body),
                    "responses": with_item_links(answers("{\"ids\": […]}")) },
                "get": { "summary": "list items, a page at a time", "parameters": [
                        { "name": "limit", "in": "query", "schema": page_limit },
                        { "name": "offset", "in": "query", "schema": offset },
                        { "name": "cursor", "in": "query", "schema": cursor },
                        { "name": "with_vectors", "in": "query", "schema": { "type": "boolean", "default": false } }],
                    "responses": answers("{\"items\": [{\"id\", \"metadata\", \"vector\"?}, …], \"next_cursor\": string or null}") },
                "delete": { "summary": "delete items by id or by filter", "requestBody": body(json!({
                    "type": "object", "additionalProperties": false,
                    "oneOf": one_of(&[("ids", &ids, true), ("filter", &filter, true)]),
                    "properties": { "ids": ids, "filter": filter } })),
                    "responses": answers("{\"deleted\": […]}") }
            },
            "/collections/{name}/items/{id}": {
                "parameters": [name[0], { "name": "id", "in": "path", "required": true, "schema": { "type": "string" }, "description": "digits: a number id" }],
                "get": { "operationId": "getItem", "summary": "one item: id, vector, metadata", "responses": answers("{\"id\", \"vector\", \"metadata\"}") }
            },
            "/collections/{name}/items/{id}/thumbnail": {
                "parameters": [name[0], { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }, { "name": "size", "in": "query", "schema": { "type": "integer", "default": 160, "minimum": 1, "maximum": 512 } }],
                "get": { "summary": "a JPEG of the image the item's metadata \"path\" names, at most size pixels a side; only files inside the --image-root folders (403 otherwise)", "responses": answers("image/jpeg") }
            },
            "/collections/{name}/items/get": {
                "parameters": name,
                "post": { "summary": "many items by id", "requestBody": body(json!({
                    "type": "object", "required": ["ids"], "additionalProperties": false,
                    "properties": { "ids": { "type": "array", "items": id, "maxItems": MAX_ITEMS_PER_REQUEST }, "with_vectors": { "type": "boolean", "default": true } } })),
                    "responses": answers("{\"items\": […], \"missing\": […]}") }
            },
            "/collections/{name}/items/list": {
                "parameters": name,
                "post": { "summary": "list items passing a filter, a page at a time", "requestBody": optional_body(json!({
                    "type": "object", "additionalProperties": false,
                    "properties": { "filter": filter, "limit": page_limit, "offset": offset, "cursor": cursor, "with_vectors": { "type": "boolean", "default": false } } })),
                    "responses": answers("{\"items\": […], \"next_cursor\": string or null}") }
            },
            "/collections/{name}/search": {
                "parameters": name,
                "post": { "summary": "k nearest items of one query or a batch", "requestBody": body(json!({
                    "type": "object", "additionalProperties": false,
                    "oneOf": search_choices, "properties": search_props })),
                    "responses": answers("{\"results\": [{\"rank\", \"id\", \"score\", \"metadata\"}, …]} (a list of such lists for \"vectors\"), \"degraded\": true when run with lowered nprobe/efSearch") }
            },
            "/collections/{name}/retrain": {
                "parameters": name,
                "post": { "summary": "rebuild the index from every stored vector (rebalances IVF lists)", "responses": answers("retrained") }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search_body(limits: Limits) -> Value {
        document(limits)["paths"]["/collections/{name}/search"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"]
            .clone()
    }

    const PLAIN: Limits = Limits {
        max_top_k: 1000,
        texts: false,
        images: false,
    };

    #[test]
    fn optional_fields_take_null_and_chosen_ones_do_not() {
        let s = search_body(PLAIN);
        assert_eq!(s["properties"]["top_k"]["nullable"], json!(true));
        assert_eq!(s["properties"]["top_k"]["maximum"], json!(1000));
        // Within the one-of choice that requires "vector", it must not be null.
        let choice = &s["oneOf"][0];
        assert_eq!(choice["required"], json!(["vector"]));
        assert!(choice["properties"]["vector"].get("nullable").is_none());
        let create = &document(PLAIN)["paths"]["/collections/{name}"]["put"]["requestBody"]["content"]
            ["application/json"]["schema"];
        assert!(create["properties"]["dim"].get("nullable").is_none());
        assert_eq!(
            create["properties"]["metric"]["enum"],
            json!(["l2", "ip", "cosine", null])
        );
    }

    #[test]
    fn text_and_image_queries_appear_only_with_their_models() {
        let fields = |limits| {
            let s = search_body(limits);
            let mut f: Vec<String> = s["oneOf"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["required"][0].as_str().unwrap().to_owned())
                .collect();
            f.sort();
            f
        };
        assert_eq!(fields(PLAIN), ["vector", "vectors"]);
        let all = Limits {
            texts: true,
            images: true,
            ..PLAIN
        };
        assert_eq!(
            fields(all),
            ["image", "images", "text", "texts", "vector", "vectors"]
        );
        let items = &document(PLAIN)["paths"]["/collections/{name}/items"]["post"];
        assert!(
            items["requestBody"]["content"]["application/json"]["schema"]["properties"]
                .get("texts")
                .is_none()
        );
        assert_eq!(
            items["responses"]["200"]["links"]["GetFirstItem"]["operationId"],
            json!("getItem")
        );
    }
}
