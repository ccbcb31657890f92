//! The OpenAPI 3 description of the API, served at `/openapi.json`.

use serde_json::{Value, json};

fn body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
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

/// The document.
pub fn document() -> Value {
    let vector = json!({ "type": "array", "items": { "type": "number" } });
    let name =
        json!([{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }]);
    let id = json!({ "oneOf": [{ "type": "integer", "minimum": 0 }, { "type": "string", "minLength": 1, "maxLength": 256 }] });
    let ids = json!({ "type": "array", "items": id });
    let filter = json!({ "type": "object", "description": "metadata filter: MongoDB/Chroma ($eq $ne $in $nin $gt $gte $lt $lte $exists $and $or $not) or Qdrant (must/should/must_not, match value/any/except, range, is_empty, is_null) style; see docs/SERVE.md" });
    let items_body = json!({
        "type": "object", "required": ["vectors"],
        "properties": { "ids": ids, "vectors": { "type": "array", "items": vector }, "texts": { "type": "array", "items": { "type": "string" } }, "images": { "type": "array", "items": { "type": "string" }, "description": "base64 or data URLs of JPEG, PNG or WebP files (needs --image-model); or send multipart/form-data with file fields named images" }, "metadata": { "type": "array", "items": { "type": "object" } } } });
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
                    "type": "object", "required": ["dim"],
                    "properties": { "dim": { "type": "integer" }, "index": { "type": "string", "description": "Faiss factory string, default Flat" }, "metric": { "type": "string", "enum": ["l2", "ip", "cosine"] } } })),
                    "responses": answers("created (201) or already there with the same definition (200)") },
                "delete": { "summary": "drop with its items", "responses": answers("dropped") }
            },
            "/collections/{name}/items": {
                "parameters": name,
                "post": { "summary": "add items (vectors or texts, metadata, optional ids)", "requestBody": body(items_body.clone()),
                    "responses": answers("{\"ids\": […]} and, when a first batch trains an IVF index on fewer than 39 points per list, \"warnings\"; 409 when an id exists") },
                "put": { "summary": "upsert items by id (replaces vector and metadata of existing ids)", "requestBody": body(items_body),
                    "responses": answers("{\"ids\": […]}") },
                "get": { "summary": "list items, a page at a time", "parameters": [
                        { "name": "limit", "in": "query", "schema": { "type": "integer", "default": 100 } },
                        { "name": "offset", "in": "query", "schema": { "type": "integer", "default": 0 } },
                        { "name": "cursor", "in": "query", "schema": { "type": "string" } },
                        { "name": "with_vectors", "in": "query", "schema": { "type": "boolean", "default": false } }],
                    "responses": answers("{\"items\": [{\"id\", \"metadata\", \"vector\"?}, …], \"next_cursor\": string or null}") },
                "delete": { "summary": "delete items by id or by filter", "requestBody": body(json!({
                    "type": "object", "properties": { "ids": ids, "filter": filter } })),
                    "responses": answers("{\"deleted\": […]}") }
            },
            "/collections/{name}/items/{id}": {
                "parameters": [name[0], { "name": "id", "in": "path", "required": true, "schema": { "type": "string" }, "description": "digits: a number id" }],
                "get": { "summary": "one item: id, vector, metadata", "responses": answers("{\"id\", \"vector\", \"metadata\"}") }
            },
            "/collections/{name}/items/{id}/thumbnail": {
                "parameters": [name[0], { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }, { "name": "size", "in": "query", "schema": { "type": "integer", "default": 160, "maximum": 512 } }],
                "get": { "summary": "a JPEG of the image the item's metadata \"path\" names, at most size pixels a side; only files inside the --image-root folders (403 otherwise)", "responses": answers("image/jpeg") }
            },
            "/collections/{name}/items/get": {
                "parameters": name,
                "post": { "summary": "many items by id", "requestBody": body(json!({
                    "type": "object", "required": ["ids"], "properties": { "ids": ids, "with_vectors": { "type": "boolean", "default": true } } })),
                    "responses": answers("{\"items\": […], \"missing\": […]}") }
            },
            "/collections/{name}/items/list": {
                "parameters": name,
                "post": { "summary": "list items passing a filter, a page at a time", "requestBody": body(json!({
                    "type": "object", "properties": { "filter": filter, "limit": { "type": "integer", "default": 100 }, "offset": { "type": "integer" }, "cursor": { "type": "string" }, "with_vectors": { "type": "boolean" } } })),
                    "responses": answers("{\"items\": […], \"next_cursor\": string or null}") }
            },
            "/collections/{name}/search": {
                "parameters": name,
                "post": { "summary": "k nearest items of one query or a batch", "requestBody": body(json!({
                    "type": "object",
                    "properties": {
                        "vector": vector, "vectors": { "type": "array", "items": vector },
                        "text": { "type": "string", "description": "needs --model" }, "texts": { "type": "array", "items": { "type": "string" } },
                        "image": { "type": "string", "description": "base64 or a data URL of a JPEG, PNG or WebP file (needs --image-model)" }, "images": { "type": "array", "items": { "type": "string" } },
                        "top_k": { "type": "integer", "default": 10 },
                        "min_score": { "type": "number", "description": "ip and cosine collections" },
                        "max_distance": { "type": "number", "description": "l2 collections" },
                        "params": { "type": "object", "properties": { "nprobe": { "type": "integer" }, "efSearch": { "type": "integer" } } },
                        "filter": filter,
                        "filter_ids": ids,
                        "deadline_ms": { "type": "integer", "description": "answer 503 + Retry-After at once rather than wait past this (default --deadline-ms)" },
                        "exact": { "type": "boolean", "description": "search every stored vector exhaustively (the ground truth an approximate index is measured against); no params" },
                        "with_metadata": { "type": "boolean", "default": true, "description": "false leaves metadata out of the hits" } } })),
                    "responses": answers("{\"results\": [{\"rank\", \"id\", \"score\", \"metadata\"}, …]} (a list of such lists for \"vectors\"), \"degraded\": true when run with lowered nprobe/efSearch") }
            },
            "/collections/{name}/retrain": {
                "parameters": name,
                "post": { "summary": "rebuild the index from every stored vector (rebalances IVF lists)", "responses": answers("retrained") }
            }
        }
    })
}
