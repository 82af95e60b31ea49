//! The OpenAPI 3.1 document's fixed parts; paths and schemas come from the handlers'
//! `#[utoipa::path]` annotations as the routers are assembled.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder};

/// The document before any path is added: info and the bearer security scheme.
pub fn base() -> OpenApi {
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("sns-platform API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Accounts, follows, posts, comments, likes, home feeds and uploads. \
                     Every error body is {\"error\": {\"code\", \"message\", \"details\"}}.",
                ))
                .build(),
        )
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    "bearer",
                    SecurityScheme::Http(
                        HttpBuilder::new()
                            .scheme(HttpAuthScheme::Bearer)
                            .bearer_format("JWT")
                            .build(),
                    ),
                )
                .build(),
        ))
        .build()
}
