//! Audits: any stream's full history — who did what, when, through which channel and request —
//! and an aggregate's state as it was at a global position or a time. Read straight from the
//! log, which keeps every stream in order and every event's envelope.

use parley_domain::Aggregate;
use parley_eventlog::codec::CodecError;
use parley_eventlog::{
    Actor, AsOf, EventLog, LogError, Position, StreamId, StreamVersion, Timestamp,
};
use uuid::Uuid;

/// One line of a stream's history.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub position: Position,
    pub version: StreamVersion,
    pub recorded_at: Timestamp,
    pub event_type: String,
    pub event_id: Uuid,
    pub actor: Option<Actor>,
    pub channel: Option<String>,
    pub request_id: Option<String>,
    /// The API token the action came through.
    pub token_id: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Up to `limit` entries of `stream`'s history after version `after`, oldest first.
pub async fn history(
    log: &dyn EventLog,
    stream: &StreamId,
    after: StreamVersion,
    limit: usize,
) -> Result<Vec<AuditEntry>, LogError> {
    let events = log.read_stream(stream, after, limit).await?;
    Ok(events
        .into_iter()
        .map(|e| AuditEntry {
            position: e.position,
            version: e.version,
            recorded_at: e.recorded_at,
            event_type: e.event_type,
            event_id: e.event_id,
            actor: e.metadata.actor,
            channel: e.metadata.channel,
            request_id: e.metadata.request_id,
            token_id: e.metadata.token_id,
            correlation_id: e.metadata.correlation_id,
            causation_id: e.metadata.causation_id,
        })
        .collect())
}

/// The aggregate behind `stream` as it was at `as_of`, with the version it had then.
pub async fn state_as_of<A: Aggregate>(
    log: &dyn EventLog,
    stream: &StreamId,
    as_of: AsOf,
) -> Result<(A, StreamVersion), AuditError> {
    const PAGE: usize = 1000;
    let mut state = A::default();
    let mut version = StreamVersion::NONE;
    loop {
        let page = log.read_stream_as_of(stream, as_of, version, PAGE).await?;
        for recorded in &page {
            let event = crate::events::from_recorded::<A::Event>(recorded)?;
            state = state.evolve(&event);
            version = recorded.version;
        }
        if page.len() < PAGE {
            return Ok((state, version));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_domain::helpdesk::{
        HelpDesk, HelpDeskEvent, HelpDeskWentOffline, HelpDeskWentOnline,
    };
    use parley_eventlog::{ActorKind, ExpectedVersion, LogOptions, Metadata};

    fn at(secs: i64) -> parley_domain::Timestamp {
        parley_domain::Timestamp::from_secs(1_700_000_000 + secs)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_auditor_sees_who_did_what_and_the_state_at_any_position() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        let log = parley_eventlog::open(&url, LogOptions::default())
            .await
            .unwrap();
        let stream = StreamId::new("helpdesk-main").unwrap();
        let admin = Metadata {
            actor: Some(Actor {
                id: "agent-1".into(),
                kind: ActorKind::Agent,
            }),
            channel: Some("api".into()),
            request_id: Some("req-1".into()),
            ..Metadata::default()
        };
        let online: HelpDeskEvent = HelpDeskWentOnline {
            by: parley_domain::Actor::System,
            at: at(0),
        }
        .into();
        let offline: HelpDeskEvent = HelpDeskWentOffline {
            by: parley_domain::Actor::System,
            at: at(60),
        }
        .into();
        let first = log
            .append(
                &stream,
                ExpectedVersion::NoStream,
                vec![crate::events::to_new_event(Uuid::now_v7(), &online, admin.clone()).unwrap()],
            )
            .await
            .unwrap();
        log.append(
            &stream,
            ExpectedVersion::Exact(StreamVersion(1)),
            vec![
                crate::events::to_new_event(Uuid::now_v7(), &offline, Metadata::default()).unwrap(),
            ],
        )
        .await
        .unwrap();

        let entries = history(log.as_ref(), &stream, StreamVersion::NONE, 100)
            .await
            .unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].event_type, "HelpDeskWentOnline");
        assert_eq!(
            entries[0].actor.as_ref().map(|a| a.id.as_str()),
            Some("agent-1")
        );
        assert_eq!(entries[0].channel.as_deref(), Some("api"));
        assert_eq!(entries[0].request_id.as_deref(), Some("req-1"));
        assert_eq!(entries[1].event_type, "HelpDeskWentOffline");

        let (then, version) =
            state_as_of::<HelpDesk>(log.as_ref(), &stream, AsOf::Position(first.last_position()))
                .await
                .unwrap();
        assert!(then.online, "online as of the first event");
        assert_eq!(version, StreamVersion(1));
        let (now, version) = state_as_of::<HelpDesk>(
            log.as_ref(),
            &stream,
            AsOf::Position(Position(u64::MAX >> 1)),
        )
        .await
        .unwrap();
        assert!(!now.online);
        assert_eq!(version, StreamVersion(2));
        let (before, version) = state_as_of::<HelpDesk>(
            log.as_ref(),
            &stream,
            AsOf::Time(parley_eventlog::Timestamp(0)),
        )
        .await
        .unwrap();
        assert_eq!(
            (before, version),
            (HelpDesk::default(), StreamVersion::NONE)
        );
        log.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_of_another_family_is_a_typed_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        let log = parley_eventlog::open(&url, LogOptions::default())
            .await
            .unwrap();
        let stream = StreamId::new("helpdesk-odd").unwrap();
        let mut stranger = crate::events::to_new_event(
            Uuid::now_v7(),
            &HelpDeskEvent::from(HelpDeskWentOnline {
                by: parley_domain::Actor::System,
                at: at(0),
            }),
            Metadata::default(),
        )
        .unwrap();
        stranger.event_type = "SomethingElse".into();
        log.append(&stream, ExpectedVersion::Any, vec![stranger])
            .await
            .unwrap();
        let result = state_as_of::<HelpDesk>(
            log.as_ref(),
            &stream,
            AsOf::Time(parley_eventlog::Timestamp(i64::MAX)),
        )
        .await;
        assert!(matches!(
            result,
            Err(AuditError::Codec(CodecError::UnknownEventType { .. }))
        ));
        log.close().await;
    }
}
