//! Domain types read straight from text columns: a value that is not one of the type's
//! spellings fails the read (a bug or a manual edit), so nothing past the store sees a string
//! where a type belongs. Written back with their stored names (`as_str`, `key`).

use sqlx::decode::Decode;
use sqlx::error::BoxDynError;
use sqlx::{Database, Type};

use crate::domain::{CampaignKind, CartStatus, CustomerRef, Receipt};

macro_rules! from_text {
    ($ty:ty, $parse:expr) => {
        impl<DB: Database> Type<DB> for $ty
        where
            String: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $ty
        where
            String: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <String as Decode<'r, DB>>::decode(value)?;
                Ok($parse(&text)?)
            }
        }
    };
}

from_text!(CartStatus, CartStatus::parse);
from_text!(CampaignKind, CampaignKind::parse);
from_text!(CustomerRef, CustomerRef::parse);
from_text!(Receipt, Receipt::parse);
from_text!(super::SendStatus, super::SendStatus::parse);
