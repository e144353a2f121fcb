//! `tradewire.v1.AnnouncementService`: thin handlers over the store and hub.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::delivery_turn::DeliveryTurn;
use super::{caller, compression, from_proto, to_proto};
use crate::hub::Hub;
use crate::pb::{self, announcement_service_server::AnnouncementService};
use crate::store::Store;

/// The handlers of `AnnouncementService`.
#[derive(Debug, Clone)]
pub(crate) struct AnnouncementApi {
    store: Store,
    hub: Hub,
}

impl AnnouncementApi {
    pub(crate) fn new(store: Store, hub: Hub) -> Self {
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
        let accepted = compression::accepted(&request);
        let caller = caller::name(&request);
        let write = from_proto::create_announcement(request.into_inner())?;
        let stored = self
            .store
            .create_announcement(write.value, write.request)
            .await?;
        caller::log_write(
            &caller,
            "CreateAnnouncement",
            &stored.value.id,
            stored.repeated,
        );
        Ok(compression::answer(
            accepted,
            pb::CreateAnnouncementResponse {
                announcement: Some(to_proto::announcement(&stored.value)),
                replayed: stored.repeated,
            },
        ))
    }

    async fn get_announcement(
        &self,
        request: Request<pb::GetAnnouncementRequest>,
    ) -> Result<Response<pb::GetAnnouncementResponse>, Status> {
        let accepted = compression::accepted(&request);
        let announcement = self
            .store
            .get_announcement(from_proto::id_of(request.get_ref())?)?;
        Ok(compression::answer(
            accepted,
            pb::GetAnnouncementResponse {
                announcement: Some(to_proto::announcement(&announcement)),
            },
        ))
    }

    async fn list_announcements(
        &self,
        request: Request<pb::ListAnnouncementsRequest>,
    ) -> Result<Response<pb::ListAnnouncementsResponse>, Status> {
        let accepted = compression::accepted(&request);
        let query = from_proto::list(request.into_inner(), from_proto::announcement_filter)?;
        // Text filters read whole bodies: the scan runs on the blocking
        // pool, never on an async worker that other calls are waiting on.
        let store = self.store.clone();
        let (filter, after, limit) = (query.filter, query.after, query.limit);
        let page =
            tokio::task::spawn_blocking(move || store.list_announcements(&filter, after, limit))
                .await
                .map_err(|e| Status::internal(format!("the list scan failed: {e}")))?;
        Ok(compression::answer(
            accepted,
            pb::ListAnnouncementsResponse {
                announcements: page
                    .items
                    .iter()
                    .map(|a| to_proto::announcement(a))
                    .collect(),
                next_page_token: query.cursor.next_token(page.next),
            },
        ))
    }

    async fn delete_announcement(
        &self,
        request: Request<pb::DeleteAnnouncementRequest>,
    ) -> Result<Response<pb::DeleteAnnouncementResponse>, Status> {
        let accepted = compression::accepted(&request);
        let id = from_proto::id_of(request.get_ref())?;
        self.store.delete_announcement(id).await?;
        caller::log_write(&caller::name(&request), "DeleteAnnouncement", &id, false);
        Ok(compression::answer(
            accepted,
            pb::DeleteAnnouncementResponse {},
        ))
    }

    type WatchAnnouncementsStream = WatchStream;

    async fn watch_announcements(
        &self,
        request: Request<pb::WatchAnnouncementsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let subscription =
            from_proto::subscription(request.get_ref(), from_proto::announcement_filter)?;
        let filter = subscription.filter;
        let events = self.hub.subscribe(
            self.store.announcement_feed(),
            subscription.start,
            (move |a| filter.matches(a), caller::owner(&request)),
            subscription.heartbeat,
        )?;
        let responses = events.map(|event| Ok(to_proto::announcement_event(&event?)));
        Ok(Response::new(Box::pin(DeliveryTurn::new(responses))))
    }
}
