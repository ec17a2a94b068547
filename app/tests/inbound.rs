//! The inbound reaction handling the same message again, as it does after a crash: it appends
//! nothing new, and the message stays on the ticket its first attempt chose even when an agent
//! changed that ticket since.

use parley_app::channels::Directory;
use parley_app::files::FileStore;
use parley_app::inbound::{DOWNLOADS_AT_ONCE, Inbound};
use parley_app::reactions::{Cause, cause, react_once};
use parley_app::service::CommandService;
use parley_domain::channel::{ChannelAccount, ChannelCommand, ChannelId};
use parley_domain::contact::{
    Contact, ContactCommand, ContactId, SocialMessageReceived, SocialProfile,
};
use parley_domain::conversation::Channel;
use parley_domain::ticket::{Ticket, TicketCommand, TicketEvent, TicketStatus};
use parley_domain::{Actor, Timestamp};
use parley_eventlog::{EventLog, Metadata, Position, StreamId};
use parley_projections::ReadModels;
use std::sync::Arc;
use uuid::Uuid;

const AT: Timestamp = Timestamp::from_secs(1_800_000_000);

struct Desk {
    _dir: tempfile::TempDir,
    log: Arc<dyn EventLog>,
    service: CommandService,
    inbound: Inbound,
    channel: ChannelId,
}

async fn desk() -> Desk {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("parley.db").display());
    let log = parley_eventlog::open(&url, Default::default())
        .await
        .expect("the log opens");
    let models = ReadModels::open(log.clone(), &url, Vec::new())
        .await
        .expect("the side stores open");
    let service = CommandService::new(log.clone());
    let channel = ChannelId(Uuid::from_u128(7));
    service
        .execute::<ChannelAccount>(
            &CommandService::stream::<ChannelAccount>(channel).unwrap(),
            ChannelCommand::Register {
                channel_id: channel,
                channel: Channel::Whatsapp,
                name: "Support".into(),
                platform_ids: [("phone_number_id".to_owned(), "1065".to_owned())].into(),
                api_base: None,
                by: Actor::System,
                at: AT,
            },
            &Metadata::default(),
        )
        .await
        .expect("the account is registered");
    let inbound = Inbound {
        service: service.clone(),
        directory: Arc::new(
            Directory::open(&models, &url, service.clone())
                .await
                .expect("the directory opens"),
        ),
        files: Arc::new(
            FileStore::new(&models, &url, 1024 * 1024)
                .await
                .expect("the file store opens"),
        ),
        client: parley_channels::http::Client::new(),
        downloads: Arc::new(tokio::sync::Semaphore::new(DOWNLOADS_AT_ONCE)),
    };
    Desk {
        _dir: dir,
        log,
        service,
        inbound,
        channel,
    }
}

impl Desk {
    /// A webhook's message from the customer `15550001`: the event the reaction handles.
    async fn webhook(&self, id: &str, text: &str) -> Cause {
        let contact = ContactId::of(self.channel, "15550001");
        let stream = CommandService::stream::<Contact>(contact).unwrap();
        let executed = self
            .service
            .execute::<Contact>(
                &stream,
                ContactCommand::Receive(SocialMessageReceived {
                    contact_id: contact,
                    channel_id: self.channel,
                    platform_message_id: id.into(),
                    profile: SocialProfile {
                        user_id: "15550001".into(),
                        name: Some("Ana".into()),
                        ..SocialProfile::default()
                    },
                    kind: "text".into(),
                    text: text.into(),
                    media: vec![],
                    reply_token: None,
                    sent_at: AT,
                    at: AT,
                }),
                &Metadata::default(),
            )
            .await
            .expect("the message is recorded");
        let recorded = self
            .log
            .read_all(Position(executed.position.0 - 1), 1)
            .await
            .expect("the log reads")
            .remove(0);
        cause(recorded).expect("the event decodes")
    }

    async fn react(&self, cause: &Cause) {
        react_once(&self.inbound, cause)
            .await
            .expect("the reaction handles it");
    }

    /// Every ticket's events, by ticket stream.
    async fn tickets(&self) -> Vec<(String, Vec<TicketEvent>)> {
        let mut tickets: Vec<(String, Vec<TicketEvent>)> = Vec::new();
        for recorded in self.log.read_all(Position(0), 10_000).await.unwrap() {
            if !recorded.stream_id.starts_with("ticket-") {
                continue;
            }
            let event = parley_projections::events::from_recorded(&recorded).unwrap();
            match tickets.iter_mut().find(|(s, _)| *s == recorded.stream_id) {
                Some((_, events)) => events.push(event),
                None => tickets.push((recorded.stream_id.clone(), vec![event])),
            }
        }
        tickets
    }
}

fn received(events: &[TicketEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            TicketEvent::CustomerMessageReceived(m) => Some(m.body.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_replayed_message_appends_nothing_and_stays_on_the_ticket_it_went_to() {
    let desk = desk().await;
    let first = desk.webhook("wamid.1", "My order is late").await;
    desk.react(&first).await;
    let second = desk.webhook("wamid.2", "Any news?").await;
    desk.react(&second).await;
    let tickets = desk.tickets().await;
    assert_eq!(
        tickets.len(),
        1,
        "the second message continues the first's ticket"
    );
    assert_eq!(received(&tickets[0].1), vec!["Any news?".to_owned()]);
    let head = desk.log.head().await.unwrap();

    // Both handled again: nothing new.
    desk.react(&first).await;
    desk.react(&second).await;
    assert_eq!(desk.log.head().await.unwrap(), head);

    // An agent solves the ticket; the second message is handled again (a replay after a
    // crash): it stays where it went, and no new ticket takes it a second time.
    let stream = StreamId::new(tickets[0].0.clone()).unwrap();
    desk.service
        .execute::<Ticket>(
            &stream,
            TicketCommand::ChangeStatus {
                to: TicketStatus::Solved,
                by: Actor::System,
                at: AT,
            },
            &Metadata::default(),
        )
        .await
        .expect("solved");
    desk.react(&second).await;
    let tickets = desk.tickets().await;
    assert_eq!(
        tickets.len(),
        1,
        "no second ticket for a message already recorded"
    );
    assert_eq!(received(&tickets[0].1), vec!["Any news?".to_owned()]);

    // A new message after the solve opens a new ticket.
    let third = desk.webhook("wamid.3", "Hello again").await;
    desk.react(&third).await;
    let tickets = desk.tickets().await;
    assert_eq!(tickets.len(), 2);
    assert!(
        matches!(&tickets[1].1[0], TicketEvent::TicketCreated(c) if c.description == "Hello again")
    );
    // The second message handled once more, now that the contact's current ticket is the new
    // one: it does not follow the contact there.
    desk.react(&second).await;
    let tickets = desk.tickets().await;
    assert_eq!(tickets.len(), 2);
    assert_eq!(received(&tickets[0].1), vec!["Any news?".to_owned()]);
    assert!(received(&tickets[1].1).is_empty(), "{:?}", tickets[1].1);
}
