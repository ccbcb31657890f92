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
        "409": { "description": "a collection exists with another definition, or a name differing only in case" },
        "413": { "description": "body over the size limit" },
        "422": { "description": "vector length or count does not match, or a value outside f32 or a squared norm above f32::MAX / 4" },
        "503": { "description": "the search was cancelled: the server is stopping" }
    })
}

/// The document.
pub fn document() -> Value {
    let vector = json!({ "type": "array", "items": { "type": "number" } });
    let name =
        json!([{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }]);
    json!({
        "openapi": "3.0.3",
        "info": { "title": "fathom search service", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/health": { "get": { "summary": "status; per collection ntotal, dim, index, items, imbalance factor, where it was loaded from", "responses": answers("status") } },
            "/metrics": { "get": { "summary": "Prometheus text: requests and latency per route and status, in-flight requests, queries searched, vectors per collection", "responses": answers("metrics") } },
            "/openapi.json": { "get": { "summary": "this document", "responses": answers("the document") } },
            "/snapshot": { "post": { "summary": "write a snapshot (database and indexes) now", "responses": answers("its directory") } },
            "/collections": { "get": { "summary": "every collection", "responses": answers("collections") } },
            "/collections/{name}": {
                "parameters": name,
                "get": { "summary": "describe", "responses": answers("the collection") },
                "put": { "summary": "create", "requestBody": body(json!({
                    "type": "object", "required": ["dim"],
                    "properties": { "dim": { "type": "integer" }, "index": { "type": "string", "description": "Faiss factory string, default Flat" }, "metric": { "type": "string", "enum": ["l2", "ip"] } } })),
                    "responses": answers("created (201) or already there with the same definition (200)") },
                "delete": { "summary": "drop with its items", "responses": answers("dropped") }
            },
            "/collections/{name}/items": {
                "parameters": name,
                "post": { "summary": "add vectors with metadata", "requestBody": body(json!({
                    "type": "object", "required": ["vectors"],
                    "properties": { "vectors": { "type": "array", "items": vector }, "metadata": { "type": "array", "items": { "type": "object" } } } })),
                    "responses": answers("{\"ids\": […]} and, when a first batch trains an IVF index on fewer than 39 points per list, \"warnings\"") },
                "delete": { "summary": "delete items", "requestBody": body(json!({
                    "type": "object", "required": ["ids"], "properties": { "ids": { "type": "array", "items": { "type": "integer" } } } })),
                    "responses": answers("{\"deleted\": […]}") }
            },
            "/collections/{name}/search": {
                "parameters": name,
                "post": { "summary": "k nearest items of one query or a batch", "requestBody": body(json!({
                    "type": "object",
                    "properties": {
                        "vector": vector, "vectors": { "type": "array", "items": vector },
                        "top_k": { "type": "integer", "default": 10 },
                        "min_score": { "type": "number", "description": "ip collections" },
                        "max_distance": { "type": "number", "description": "l2 collections" },
                        "params": { "type": "object", "properties": { "nprobe": { "type": "integer" }, "efSearch": { "type": "integer" } } },
                        "filter_ids": { "type": "array", "items": { "type": "integer" } },
                        "with_metadata": { "type": "boolean", "default": true, "description": "false leaves metadata out of the hits" } } })),
                    "responses": answers("{\"results\": [{\"rank\", \"id\", \"score\", \"metadata\"}, …]} (a list of such lists for \"vectors\")") }
            },
            "/collections/{name}/retrain": {
                "parameters": name,
                "post": { "summary": "rebuild the index from every stored vector (rebalances IVF lists)", "responses": answers("retrained") }
            }
        }
    })
}
