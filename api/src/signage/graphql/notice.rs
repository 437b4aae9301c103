//! Notices: listing them, creating, updating and deleting one.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::access::Action;
use domain::signage::{NoticeCommand, NoticeContent, SignageState};
use uuid::Uuid;

use super::support::{Removed, Target, check_media, content, execute, id, opt_id};
use crate::error::{ApiError, ApiResult};
use crate::graphql::{parse_id, principal};
use crate::identity::auth::Principal;

/// A signage notice.
#[derive(SimpleObject)]
pub struct Notice {
    pub id: ID,
    pub title: String,
    pub body: String,
    pub media_id: Option<ID>,
    pub category_id: Option<ID>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    pub priority: i32,
    pub duration_seconds: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct NoticeInput {
    pub title: String,
    #[graphql(default)]
    pub body: String,
    pub media_id: Option<ID>,
    pub category_id: Option<ID>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    #[graphql(default)]
    pub priority: i32,
    #[graphql(default = 10)]
    pub duration_seconds: i32,
}

fn notice_out(id_: Uuid, s: &SignageState) -> ApiResult<Notice> {
    let n = s
        .notices
        .get(&id_)
        .filter(|n| !n.deleted)
        .ok_or(ApiError::NotFound("notice"))?;
    let c = &n.content;
    Ok(Notice {
        id: id(id_),
        title: c.title.clone(),
        body: c.body.clone(),
        media_id: c.media_id.map(id),
        category_id: c.category_id.map(id),
        valid_from: c.valid_from,
        valid_to: c.valid_to,
        priority: c.priority,
        duration_seconds: c.duration_seconds as i32,
        created_at: n.created_at,
    })
}

/// Validates a notice input in the tenant.
async fn notice_content(
    ctx: &Context<'_>,
    p: &Principal,
    input: NoticeInput,
) -> ApiResult<NoticeContent> {
    let media = opt_id(&input.media_id, "mediaId")?;
    let category = opt_id(&input.category_id, "categoryId")?;
    let parsed = NoticeContent::parse(
        &input.title,
        &input.body,
        media,
        category,
        input.valid_from,
        input.valid_to,
        input.priority,
        input.duration_seconds,
    )?;
    check_media(ctx, p, media).await?;
    if let Some(c) = category
        && !content(ctx, p).await?.categories.contains_key(&c)
    {
        return Err(ApiError::NotFound("category"));
    }
    Ok(parsed)
}

/// The notice queries.
#[derive(Default)]
pub struct NoticeQuery;

#[Object]
impl NoticeQuery {
    /// Notices (deleted ones are gone), newest first.
    async fn notices(&self, ctx: &Context<'_>) -> ApiResult<Vec<Notice>> {
        let p = principal(ctx, Action::Read)?;
        let s = content(ctx, p).await?;
        let mut out: Vec<Notice> = s
            .notices
            .iter()
            .filter(|(_, n)| !n.deleted)
            .map(|(i, _)| notice_out(*i, &s))
            .collect::<ApiResult<_>>()?;
        out.sort_by_key(|a| std::cmp::Reverse(a.created_at));
        Ok(out)
    }
}

/// The notice mutations.
#[derive(Default)]
pub struct NoticeMutation;

#[Object]
impl NoticeMutation {
    async fn create_notice(&self, ctx: &Context<'_>, input: NoticeInput) -> ApiResult<Notice> {
        let p = principal(ctx, Action::ManageSignage)?;
        let content_ = notice_content(ctx, p, input).await?;
        let notice = crate::ids::new_id();
        execute(
            ctx,
            p,
            |st| &st.notices,
            Target::New(notice),
            NoticeCommand::Create(content_),
        )
        .await?;
        notice_out(notice, &content(ctx, p).await?)
    }

    async fn update_notice(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: NoticeInput,
    ) -> ApiResult<Notice> {
        let p = principal(ctx, Action::ManageSignage)?;
        let notice = parse_id(&id, "id")?;
        let content_ = notice_content(ctx, p, input).await?;
        execute(
            ctx,
            p,
            |st| &st.notices,
            Target::Existing(notice),
            NoticeCommand::Update(content_),
        )
        .await?;
        notice_out(notice, &content(ctx, p).await?)
    }

    /// Deletes a notice: it leaves every display at once; its plays stay.
    async fn delete_notice(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Removed> {
        let p = principal(ctx, Action::ManageSignage)?;
        let notice = parse_id(&id, "id")?;
        execute(
            ctx,
            p,
            |st| &st.notices,
            Target::Existing(notice),
            NoticeCommand::Delete,
        )
        .await?;
        Ok(Removed { id })
    }
}
