//! `GET /api/openapi.json`: the document of the HTTP contract, as
//! [`crate::openapi`] built it at start-up. It does not build the document:
//! that would make the routes depend on the module that lists them.

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};

use crate::state::AppState;

/// `GET /api/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this server", body = Object),
    ),
)]
pub async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(state.openapi_json.clone())
}
