//! Campaign: a named, time-zoned date range that groups posts.

use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::schedule::TimeZone;
use crate::text::check_single_line;
use crate::{DomainError, Scoped};

/// Lifecycle of a campaign. `Completed` is never stored: an active campaign is
/// completed once its end date has passed in its own time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CampaignStatus {
    Draft,
    Active,
    Paused,
    Completed,
    Archived,
}

impl CampaignStatus {
    /// Stable upper-case name used in read models and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "DRAFT",
            Self::Active => "ACTIVE",
            Self::Paused => "PAUSED",
            Self::Completed => "COMPLETED",
            Self::Archived => "ARCHIVED",
        }
    }

    /// The status a user sees on `now`, given the stored one.
    pub fn effective(self, ends_on: NaiveDate, zone: TimeZone, now: DateTime<Utc>) -> Self {
        if matches!(self, Self::Active | Self::Paused) && zone.today(now) > ends_on {
            Self::Completed
        } else {
            self
        }
    }
}

/// Validated campaign settings, shared by create and update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignSettings {
    pub name: String,
    pub time_zone: TimeZone,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    /// Whether every image in the campaign's posts needs alt text. Campaigns
    /// recorded before the setting existed do not require it.
    #[serde(default)]
    pub alt_text_required: bool,
}

impl CampaignSettings {
    /// Validates raw input: name 1–200 characters, a known IANA zone, and an end
    /// date that is not before the start date. Alt text is not required
    /// unless the caller sets [`CampaignSettings::alt_text_required`].
    pub fn parse(
        name: &str,
        time_zone: &str,
        starts_on: NaiveDate,
        ends_on: NaiveDate,
    ) -> Result<Self, DomainError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(DomainError::invalid("name", "must be 1 to 200 characters"));
        }
        check_single_line(name, "name")?;
        let time_zone = TimeZone::parse(time_zone)?;
        if ends_on < starts_on {
            return Err(DomainError::invalid(
                "endsOn",
                "must not be before startsOn",
            ));
        }
        Ok(Self {
            name: name.to_string(),
            time_zone,
            starts_on,
            ends_on,
            alt_text_required: false,
        })
    }
}

/// Commands on a campaign.
#[derive(Debug, Clone)]
pub enum CampaignCommand {
    Create(CampaignSettings),
    Update(CampaignSettings),
    Activate,
    Pause,
    Resume,
    Archive,
}

/// Facts about a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CampaignEvent {
    CampaignCreated {
        tenant_id: Uuid,
        settings: CampaignSettings,
    },
    CampaignUpdated {
        settings: CampaignSettings,
    },
    CampaignActivated,
    CampaignPaused,
    CampaignResumed,
    CampaignArchived,
}
crate::domain_event!(CampaignEvent, "1");

/// Current state of a campaign.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Campaign {
    pub tenant_id: Option<Uuid>,
    pub settings: Option<CampaignSettings>,
    pub status: Option<CampaignStatus>,
}

impl Campaign {
    /// Whether the campaign exists for `tenant_id`.
    pub fn visible_to(&self, tenant_id: Uuid) -> bool {
        self.tenant_id == Some(tenant_id)
    }

    fn transition(
        &self,
        from: &[CampaignStatus],
        event: CampaignEvent,
        verb: &str,
    ) -> Result<CampaignEvent, DomainError> {
        let status = self.status.expect("existing campaign has a status");
        if from.contains(&status) {
            Ok(event)
        } else {
            Err(DomainError::Conflict(format!(
                "cannot {verb} a campaign that is {}",
                status.as_str()
            )))
        }
    }

    /// Decides a command without I/O; `Ok(events)` are the facts to append.
    pub fn decide(
        &self,
        Scoped { tenant_id, command }: Scoped<CampaignCommand>,
    ) -> Result<Vec<CampaignEvent>, DomainError> {
        use CampaignStatus::*;
        let event = match command {
            CampaignCommand::Create(settings) => {
                if self.tenant_id.is_some() {
                    return Err(DomainError::Conflict("campaign already exists".into()));
                }
                CampaignEvent::CampaignCreated {
                    tenant_id,
                    settings,
                }
            }
            _ if !self.visible_to(tenant_id) => return Err(DomainError::NotFound("campaign")),
            CampaignCommand::Update(settings) => self.transition(
                &[Draft, Active, Paused],
                CampaignEvent::CampaignUpdated { settings },
                "update",
            )?,
            CampaignCommand::Activate => {
                self.transition(&[Draft], CampaignEvent::CampaignActivated, "activate")?
            }
            CampaignCommand::Pause => {
                self.transition(&[Active], CampaignEvent::CampaignPaused, "pause")?
            }
            CampaignCommand::Resume => {
                self.transition(&[Paused], CampaignEvent::CampaignResumed, "resume")?
            }
            CampaignCommand::Archive => self.transition(
                &[Draft, Active, Paused],
                CampaignEvent::CampaignArchived,
                "archive",
            )?,
        };
        Ok(vec![event])
    }
}

impl Aggregate for Campaign {
    const TYPE: &'static str = "Campaign";
    type Command = Scoped<CampaignCommand>;
    type Event = CampaignEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        crate::record(self.decide(command), self, sink).await
    }

    fn apply(&mut self, event: CampaignEvent) {
        use CampaignStatus::*;
        match event {
            CampaignEvent::CampaignCreated {
                tenant_id,
                settings,
            } => {
                self.tenant_id = Some(tenant_id);
                self.settings = Some(settings);
                self.status = Some(Draft);
            }
            CampaignEvent::CampaignUpdated { settings } => self.settings = Some(settings),
            CampaignEvent::CampaignActivated | CampaignEvent::CampaignResumed => {
                self.status = Some(Active)
            }
            CampaignEvent::CampaignPaused => self.status = Some(Paused),
            CampaignEvent::CampaignArchived => self.status = Some(Archived),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type Given = TestFramework<Campaign>;

    fn settings() -> CampaignSettings {
        CampaignSettings::parse(
            "Spring launch",
            "Europe/Berlin",
            NaiveDate::from_ymd_opt(2027, 3, 1).unwrap(),
            NaiveDate::from_ymd_opt(2027, 3, 31).unwrap(),
        )
        .unwrap()
    }

    fn tenant() -> Uuid {
        Uuid::from_u128(1)
    }

    fn created() -> CampaignEvent {
        CampaignEvent::CampaignCreated {
            tenant_id: tenant(),
            settings: settings(),
        }
    }

    fn cmd(command: CampaignCommand) -> Scoped<CampaignCommand> {
        Scoped {
            tenant_id: tenant(),
            command,
        }
    }

    #[test]
    fn create_records_the_settings() {
        Given::with(())
            .given_no_previous_events()
            .when(cmd(CampaignCommand::Create(settings())))
            .then_expect_events(vec![created()]);
    }

    #[test]
    fn campaigns_recorded_before_the_alt_text_setting_load_without_it() {
        let stored = serde_json::json!({"CampaignCreated": {
            "tenant_id": tenant(),
            "settings": {
                "name": "Spring launch",
                "time_zone": "Europe/Berlin",
                "starts_on": "2027-03-01",
                "ends_on": "2027-03-31",
            },
        }});
        let event: CampaignEvent = serde_json::from_value(stored).unwrap();
        assert_eq!(event, created());
        let CampaignEvent::CampaignCreated { settings, .. } = event else {
            unreachable!()
        };
        assert!(!settings.alt_text_required);

        let required = CampaignSettings {
            alt_text_required: true,
            ..settings
        };
        let event = CampaignEvent::CampaignUpdated { settings: required };
        let stored = serde_json::to_value(&event).unwrap();
        assert_eq!(
            stored["CampaignUpdated"]["settings"]["alt_text_required"],
            true
        );
        assert_eq!(
            serde_json::from_value::<CampaignEvent>(stored).unwrap(),
            event
        );
    }

    #[test]
    fn settings_reject_unknown_zone_and_reversed_dates() {
        let d = |m, day| NaiveDate::from_ymd_opt(2027, m, day).unwrap();
        assert!(matches!(
            CampaignSettings::parse("x", "Europe/Atlantis", d(3, 1), d(3, 2)),
            Err(DomainError::Validation { field, .. }) if field == "timeZone"
        ));
        assert!(matches!(
            CampaignSettings::parse("x", "UTC", d(3, 2), d(3, 1)),
            Err(DomainError::Validation { field, .. }) if field == "endsOn"
        ));
        assert!(CampaignSettings::parse("  ", "UTC", d(3, 1), d(3, 1)).is_err());
    }

    #[test]
    fn pause_and_resume_follow_the_status_machine() {
        Given::with(())
            .given(vec![created(), CampaignEvent::CampaignActivated])
            .when(cmd(CampaignCommand::Pause))
            .then_expect_events(vec![CampaignEvent::CampaignPaused]);
        Given::with(())
            .given(vec![created()])
            .when(cmd(CampaignCommand::Pause))
            .then_expect_error(DomainError::Conflict(
                "cannot pause a campaign that is DRAFT".into(),
            ));
        Given::with(())
            .given(vec![created(), CampaignEvent::CampaignArchived])
            .when(cmd(CampaignCommand::Update(settings())))
            .then_expect_error(DomainError::Conflict(
                "cannot update a campaign that is ARCHIVED".into(),
            ));
    }

    #[test]
    fn another_tenant_sees_not_found() {
        Given::with(())
            .given(vec![created()])
            .when(Scoped {
                tenant_id: Uuid::from_u128(2),
                command: CampaignCommand::Archive,
            })
            .then_expect_error(DomainError::NotFound("campaign"));
        Given::with(())
            .given_no_previous_events()
            .when(cmd(CampaignCommand::Activate))
            .then_expect_error(DomainError::NotFound("campaign"));
    }

    #[test]
    fn active_campaign_is_completed_after_its_end_date() {
        let s = settings();
        let after = "2027-04-01T12:00:00Z".parse().unwrap();
        let during = "2027-03-31T21:00:00Z".parse().unwrap(); // 23:00 in Berlin
        assert_eq!(
            CampaignStatus::Active.effective(s.ends_on, s.time_zone, after),
            CampaignStatus::Completed
        );
        assert_eq!(
            CampaignStatus::Active.effective(s.ends_on, s.time_zone, during),
            CampaignStatus::Active
        );
    }
}
