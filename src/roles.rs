//! The operator's and the shop checkout's credentials: fixed bearer tokens from the
//! settings, compared in constant time, guarding whole scopes.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The shortest role token accepted, in characters.
pub const MIN_ROLE_TOKEN: usize = 16;

/// One role's credential, kept as a digest: comparing digests in constant time hides
/// both the token and its length.
#[derive(Clone)]
pub struct RoleToken([u8; 32]);

impl RoleToken {
    /// The credential `token`.
    pub fn new(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    fn admits(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0.ct_eq(&presented).into()
    }
}

/// The configured credentials of the operator and of the shop checkout.
#[derive(Clone, Default)]
pub struct Roles {
    /// `ADMIN_TOKEN`, when set.
    pub admin: Option<RoleToken>,
    /// `SHOP_TOKEN`, when set.
    pub shop: Option<RoleToken>,
}

/// Which role a scope belongs to.
#[derive(Debug, Clone, Copy)]
enum Role {
    Admin,
    Shop,
}

/// Admits only the operator to the scope it wraps — unknown paths under it included, so
/// that a wrong credential never learns which endpoints exist.
pub async fn admin_only(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    guard(Role::Admin, req, next).await
}

/// Admits only the shop checkout to the scope it wraps.
pub async fn shop_only(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    guard(Role::Shop, req, next).await
}

async fn guard(
    role: Role,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match check(role, &req) {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(error) => {
            let response = error.error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

fn check(role: Role, req: &ServiceRequest) -> Result<(), ApiError> {
    let roles = req
        .app_data::<web::Data<Roles>>()
        .ok_or_else(|| ApiError::internal("roles are not configured"))?;
    let (token, disabled, required) = match role {
        Role::Admin => (
            &roles.admin,
            "operator API disabled: set ADMIN_TOKEN",
            "operator credentials required",
        ),
        Role::Shop => (
            &roles.shop,
            "shop API disabled: set SHOP_TOKEN",
            "shop credentials required",
        ),
    };
    let token = token.as_ref().ok_or(ApiError::Forbidden(disabled))?;
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or(ApiError::Unauthorized(required))?;
    if token.admits(presented) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(required))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_admits_itself_only() {
        let token = RoleToken::new("operator-token-0123456789");
        assert!(token.admits("operator-token-0123456789"));
        assert!(!token.admits("operator-token-012345678"));
        assert!(!token.admits(""));
    }
}
