//! Notice categories: listing them and creating one.

use async_graphql::{Context, ID, Object, SimpleObject};
use domain::access::Action;
use domain::signage::CategoryCommand;

use super::support::{Target, content, execute, id};
use crate::error::ApiResult;
use crate::graphql::principal;

/// A notice category.
#[derive(SimpleObject)]
pub struct NoticeCategory {
    pub id: ID,
    pub name: String,
}

/// The notice category queries.
#[derive(Default)]
pub struct CategoryQuery;

#[Object]
impl CategoryQuery {
    /// Notice categories, by name.
    async fn notice_categories(&self, ctx: &Context<'_>) -> ApiResult<Vec<NoticeCategory>> {
        let p = principal(ctx, Action::Read)?;
        let s = content(ctx, p).await?;
        let mut out: Vec<NoticeCategory> = s
            .categories
            .iter()
            .map(|(i, n)| NoticeCategory {
                id: id(*i),
                name: n.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// The notice category mutations.
#[derive(Default)]
pub struct CategoryMutation;

#[Object]
impl CategoryMutation {
    async fn create_notice_category(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> ApiResult<NoticeCategory> {
        let p = principal(ctx, Action::ManageSignage)?;
        let category = crate::ids::new_id();
        execute(
            ctx,
            p,
            |st| &st.categories,
            Target::New(category),
            CategoryCommand::Create { name },
        )
        .await?;
        let s = content(ctx, p).await?;
        Ok(NoticeCategory {
            id: id(category),
            name: s.categories.get(&category).cloned().unwrap_or_default(),
        })
    }
}
