//! `tradewire.v1.AnnouncementService`: thin handlers over the store and hub.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use ulid::Ulid;

use super::from_proto::{self as from, Check};
use super::{page_token, request_key, to_proto};
use crate::hub::{Event, Hub};
use crate::pb::watch_announcements_request::Start;
use crate::pb::watch_announcements_response::Event as WireEvent;
use crate::pb::{self, announcement_service_server::AnnouncementService};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct AnnouncementApi {
    store: Store,
    hub: Hub,
}

impl AnnouncementApi {
    pub fn new(store: Store, hub: Hub) -> Self {
        AnnouncementApi { store, hub }
    }
}

type WatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchAnnouncementsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AnnouncementService for AnnouncementApi {
    async fn create_announcement(
        &self,
        request: Request<pb::CreateAnnouncementRequest>,
    ) -> Result<Response<pb::CreateAnnouncementResponse>, Status> {
        let mut req = request.into_inner();
        let mut check = Check::default();
        let key = request_key(&mut check, &mut req, |r| std::mem::take(&mut r.request_id));
        let announcement =
            from::announcement(&mut check, "announcement", req.announcement.as_ref());
        let announcement = check.finish(announcement)?;
        let stored = self.store.create_announcement(announcement, key).await?;
        Ok(Response::new(pb::CreateAnnouncementResponse {
            announcement: Some(to_proto::announcement(&stored)),
        }))
    }

    async fn get_announcement(
        &self,
        request: Request<pb::GetAnnouncementRequest>,
    ) -> Result<Response<pb::GetAnnouncementResponse>, Status> {
        let id = from::id("id", &request.get_ref().id)?;
        let announcement = self.store.get_announcement(id)?;
        Ok(Response::new(pb::GetAnnouncementResponse {
            announcement: Some(to_proto::announcement(&announcement)),
        }))
    }

    async fn list_announcements(
        &self,
        request: Request<pb::ListAnnouncementsRequest>,
    ) -> Result<Response<pb::ListAnnouncementsResponse>, Status> {
        let req = request.into_inner();
        let limit = from::page_size(req.page_size)?;
        let mut check = Check::default();
        let filter = from::announcement_filter(&mut check, "filter", req.filter.as_ref());
        let filter = check.finish(Some(filter))?;
        let (cursor, after) =
            page_token::Cursor::read::<Ulid>(&req.page_token, &req.filter.unwrap_or_default())?;
        let page = self.store.list_announcements(&filter, after, limit);
        Ok(Response::new(pb::ListAnnouncementsResponse {
            announcements: page
                .items
                .iter()
                .map(|a| to_proto::announcement(a))
                .collect(),
            next_page_token: cursor.next_token(page.next),
        }))
    }

    async fn delete_announcement(
        &self,
        request: Request<pb::DeleteAnnouncementRequest>,
    ) -> Result<Response<pb::DeleteAnnouncementResponse>, Status> {
        let id = from::id("id", &request.get_ref().id)?;
        self.store.delete_announcement(id).await?;
        Ok(Response::new(pb::DeleteAnnouncementResponse {}))
    }

    type WatchAnnouncementsStream = WatchStream;

    async fn watch_announcements(
        &self,
        request: Request<pb::WatchAnnouncementsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let req = request.into_inner();
        let mut check = Check::default();
        let filter = from::announcement_filter(&mut check, "filter", req.filter.as_ref());
        let heartbeat = from::heartbeat(
            &mut check,
            "heartbeat_interval",
            req.heartbeat_interval.as_ref(),
        );
        let filter = check.finish(Some(filter))?;
        let after = match req.start {
            Some(Start::AfterSequence(n)) => Some(n),
            Some(Start::FromNow(_)) | None => None,
        };
        let events = self.hub.subscribe(
            self.store.announcement_feed(),
            from::start(after),
            move |a| filter.matches(a),
            heartbeat,
        )?;
        let responses = events.map(|event| {
            let event = match event? {
                Event::Item(a) => WireEvent::Announcement(to_proto::announcement(&a)),
                Event::CaughtUp(head) => WireEvent::CaughtUp(pb::CaughtUp {
                    head_sequence: head,
                }),
                Event::Heartbeat(head) => WireEvent::Heartbeat(pb::Heartbeat {
                    head_sequence: head,
                }),
            };
            Ok(pb::WatchAnnouncementsResponse { event: Some(event) })
        });
        Ok(Response::new(Box::pin(responses)))
    }
}
