//! The SIP side of a bridged call after the answer, shared by calls in both directions: new offers
//! from the peer (hold, resume, codec change, refresh), hold and resume asked by the browser,
//! and DTMF both ways (RFC 4733 in the media, or SIP INFO).

use super::legs::{accept_offered_numbers, encoding_of_codec, sip_leg};
use super::inbound::CallLayer;
use super::registry::{BrowserAnswer, BrowserPush};
use crate::media::engine::SessionHandle;
use crate::media::handler::PayloadFormat;
use crate::media::session::{MediaEvent, Side};
use crate::media::srtp::SdesKeys;
use crate::config::SrtpPolicy;
use crate::sdp::{self, Codec, Direction, LocalCapabilities, NegotiatedAudio, SessionDescription};
use crate::signaling::HangupReason;
use crate::sip::core::{DialogEvent, SipCallId};
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long each digit the browser sends lasts toward the SIP side.
const DIGIT_MS: u32 = 100;

/// A leg sent no RTP for `[media] rtp_timeout_secs` (`rtp_hold_timeout_secs` on hold): the call
/// ends with BYE to the SIP side and `media_timeout` to the browser, and the record says so. The
/// timers run only once the call is answered (see `media::session::inactivity`), so there is
/// never a CANCEL or an error answer for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaTimeout {
    /// The silent leg: "SIP" or "browser".
    pub leg: &'static str,
    pub silent_for: Duration,
}

impl MediaTimeout {
    pub const REASON: HangupReason = HangupReason::MediaTimeout;

    /// The `cause` for the browser and the record's hangup reason. It starts with the protocol's
    /// reason value so records can be searched for it.
    pub fn cause(&self) -> String {
        format!("media_timeout: no RTP from the {} side for {} s", self.leg, self.silent_for.as_secs())
    }
}

pub struct SipSide {
    pub id: SipCallId,
    /// Which side of the media session is the SIP peer.
    pub side: Side,
    call_id: String,
    address: IpAddr,
    port: u16,
    /// Our SDP as last agreed, so a new answer or offer keeps its origin with a higher version.
    local: SessionDescription,
    /// The peer's last SDP: a re-offer with the same origin changes nothing (RFC 3264 §8).
    remote: Option<SessionDescription>,
    codec: Codec,
    /// The offer we sent (hold, resume) and the browser request waiting for its outcome.
    our_offer: Option<(SessionDescription, oneshot::Sender<Result<(), String>>)>,
    /// A transfer the peer has not accepted or refused yet.
    transfer: Option<oneshot::Sender<Result<(), String>>>,
    held_by_browser: bool,
    held_by_peer: bool,
    /// What the browser was last told about `held_by_peer`.
    browser_told_held: bool,
    /// The peer reported the transfer target answered: the call should end.
    pub transferred: bool,
    /// The profile's `srtp`, for the peer's re-offers.
    srtp: SrtpPolicy,
    /// SDES keys in use on the SIP leg, when the call is SRTP.
    keys: Option<SdesKeys>,
}

impl SipSide {
    #[allow(clippy::too_many_arguments)]
    pub fn new(id: SipCallId, side: Side, call_id: &str, address: IpAddr, port: u16, local: SessionDescription, remote: Option<SessionDescription>, codec: Codec) -> SipSide {
        SipSide { id, side, call_id: call_id.to_string(), address, port, local, remote, codec, our_offer: None, transfer: None, held_by_browser: false, held_by_peer: false, browser_told_held: false, transferred: false, srtp: SrtpPolicy::default(), keys: None }
    }

    /// The SRTP policy of the call's profile and the keys the first offer/answer settled.
    pub fn with_srtp(mut self, srtp: SrtpPolicy, keys: Option<SdesKeys>) -> SipSide {
        self.srtp = srtp;
        self.keys = keys;
        self
    }

    /// Handles what the SIP core reported about this call's dialog.
    pub async fn on_dialog_event(&mut self, layer: &CallLayer, media: &SessionHandle, push: &mpsc::Sender<BrowserPush>, event: DialogEvent) {
        match event {
            DialogEvent::Reoffer { sdp, .. } => {
                let answer = self.answer_reoffer(media, &sdp).await;
                if answer.is_ok() {
                    self.tell_hold_state(push).await;
                }
                layer.sip.call_reanswer(self.id, answer).await;
            }
            DialogEvent::Dtmf { digit, duration_ms, .. } => {
                let _ = push.send(BrowserPush::Dtmf { call_id: self.call_id.clone(), digit, duration_ms }).await;
            }
            DialogEvent::ReofferAnswered { sdp, .. } => {
                let Some((offer, reply)) = self.our_offer.take() else { return };
                let answered = SessionDescription::parse(&sdp).and_then(|answer| sdp::read_answer(&offer, &answer).map(|n| (answer, n)));
                let keyed = answered.and_then(|(answer, n)| super::sdes::read_answer(&offer, &n).map(|keys| (answer, n, keys)));
                let result = match keyed.ok() {
                    Some((answer, negotiated, keys)) => {
                        self.rekey(media, keys).await;
                        let applied = self.apply(media, &negotiated, Some(&offer)).await;
                        self.local = offer;
                        self.remote = Some(answer);
                        applied
                    }
                    None => Err("the peer's answer cannot be used".to_string()),
                };
                let _ = reply.send(result);
            }
            DialogEvent::ReferAnswered { status, .. } => {
                if let Some(reply) = self.transfer.take() {
                    let _ = reply.send(if (200..300).contains(&status) { Ok(()) } else { Err(format!("the SIP peer refused the transfer with {status}")) });
                }
            }
            // The transfer target answered: our part is done (RFC 5589 §6), so hang up.
            DialogEvent::Transferred { .. } => {
                tracing::info!("transfer completed: BYE");
                self.transferred = true;
            }
            DialogEvent::ReofferRefused { status, .. } => {
                if let Some((_, reply)) = self.our_offer.take() {
                    self.held_by_browser = !self.held_by_browser;
                    let _ = reply.send(Err(format!("the SIP peer refused with {status}")));
                }
            }
        }
    }

    /// Digits the SIP side sent in the media reach the browser as `dtmf` events; digits for a
    /// peer that wants SIP INFO leave as INFO. A silent leg ends the call: the caller hangs up
    /// with the returned timeout.
    #[must_use]
    pub async fn on_media_event(&mut self, layer: &CallLayer, push: &mpsc::Sender<BrowserPush>, event: MediaEvent) -> Option<MediaTimeout> {
        match event {
            MediaEvent::Digit { from, digit, duration_ms } if from == self.side => {
                tracing::info!(%digit, duration_ms, "DTMF from the SIP side");
                let _ = push.send(BrowserPush::Dtmf { call_id: self.call_id.clone(), digit, duration_ms }).await;
            }
            MediaEvent::SendInfo { toward, digit, duration_ms } if toward == self.side => {
                layer.sip.call_info_dtmf(self.id, digit, duration_ms).await;
            }
            MediaEvent::Inactive { side, silent_for } => {
                let timeout = MediaTimeout { leg: if side == self.side { "SIP" } else { "browser" }, silent_for };
                tracing::info!(leg = timeout.leg, ?silent_for, on_hold = self.held_by_browser || self.held_by_peer, "media timeout: BYE");
                return Some(timeout);
            }
            _ => {}
        }
        None
    }

    /// Browser requests about the SIP side; anything else is handed back.
    pub async fn on_browser(&mut self, layer: &CallLayer, media: &SessionHandle, request: BrowserAnswer) -> Option<BrowserAnswer> {
        match request {
            BrowserAnswer::Dtmf { digits, reply } => {
                let result = media.send_dtmf(self.side, &digits, DIGIT_MS).await.map_err(|e| e.to_string());
                let _ = reply.send(result);
            }
            BrowserAnswer::Hold { hold, reply } => {
                if self.our_offer.is_some() {
                    let _ = reply.send(Err("a hold or resume is already in progress".into()));
                    return None;
                }
                if hold == self.held_by_browser {
                    let _ = reply.send(Ok(()));
                    return None;
                }
                // Held by us, the peer gets nothing from the browser, so say sendonly and send nothing.
                let offer = sdp::with_direction(&self.local, if hold { Direction::SendOnly } else { Direction::SendRecv });
                match layer.sip.call_reoffer(self.id, offer.to_string()).await {
                    Ok(()) => {
                        self.held_by_browser = hold;
                        self.our_offer = Some((offer, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            BrowserAnswer::Transfer { target, reply } => {
                if self.transfer.is_some() {
                    let _ = reply.send(Err("a transfer is already in progress".into()));
                    return None;
                }
                match layer.sip.call_refer(self.id, target).await {
                    Ok(()) => self.transfer = Some(reply),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            other => return Some(other),
        }
        None
    }

    async fn answer_reoffer(&mut self, media: &SessionHandle, sdp_text: &str) -> Result<String, u16> {
        let offer = SessionDescription::parse(sdp_text).map_err(|e| e.sip_status())?;
        if self.remote.as_ref().is_some_and(|last| sdp::is_same_version(last, &offer)) {
            // A session refresh or a repeated offer: nothing changes, our answer neither.
            return Ok(self.local.to_string());
        }
        // The codec in use first, so a re-INVITE that keeps it needs no transcoder change.
        let mut codecs = vec![self.codec];
        codecs.extend([Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus].into_iter().filter(|c| *c != self.codec));
        let mut capabilities = LocalCapabilities::new(codecs);
        if self.held_by_browser {
            capabilities.direction = Direction::SendOnly;
        }
        let refused = |e: sdp::SdpError| {
            tracing::info!(error = %e, status = e.sip_status(), "re-offer refused");
            e.sip_status()
        };
        let (mut answer, negotiated) = sdp::answer(&offer, &capabilities, self.address, self.port, self.local.origin.session_id).map_err(refused)?;
        let keys = super::sdes::answer_offer(self.srtp, &offer, &negotiated, &mut answer, self.keys.as_ref()).map_err(refused)?;
        answer.origin = self.local.origin.clone();
        answer.origin.version = self.local.origin.version.wrapping_add(1);
        self.rekey(media, keys).await;
        self.apply(media, &negotiated, None).await.map_err(|_| 500u16)?;
        // sendonly or inactive from the peer (or c=0.0.0.0): it will not take our audio.
        self.held_by_peer = !negotiated.direction.receives();
        self.local = answer;
        self.remote = Some(offer);
        Ok(self.local.to_string())
    }

    /// Points the media session's SIP leg at what was just agreed; `our_offer` when the peer
    /// answered ours (it may send under our numbers).
    async fn apply(&mut self, media: &SessionHandle, negotiated: &NegotiatedAudio, our_offer: Option<&SessionDescription>) -> Result<(), String> {
        let codec = negotiated.codecs.first().ok_or("no codec agreed")?;
        let format = PayloadFormat { encoding: encoding_of_codec(codec.codec), payload_type: codec.payload_type, channels: 1 };
        let mut config = sip_leg(negotiated, format);
        if let Some(offer) = our_offer {
            accept_offered_numbers(&mut config, offer);
        }
        config.send &= !self.held_by_browser;
        if codec.codec != self.codec {
            tracing::info!(from = ?self.codec, to = ?codec.codec, "the SIP side changed codec");
        }
        self.codec = codec.codec;
        media.update_leg(self.side, config).await.map_err(|e| e.to_string())
    }

    /// Installs the keys a re-INVITE settled, replacing only the directions whose key changed,
    /// so an unchanged direction keeps its SRTP indices and replay window.
    async fn rekey(&mut self, media: &SessionHandle, keys: Option<SdesKeys>) {
        let (Some(new), current) = (keys, self.keys.as_ref()) else { return };
        let outbound = (current.map(|c| &c.local) != Some(&new.local)).then(|| new.local.context());
        let inbound = (current.map(|c| &c.remote) != Some(&new.remote)).then(|| new.remote.context());
        if outbound.is_some() || inbound.is_some() {
            tracing::info!(rekey_outbound = outbound.is_some(), rekey_inbound = inbound.is_some(), "new SDES keys on the SIP leg");
            if media.rekey_srtp(self.side, outbound, inbound).await.is_err() {
                tracing::warn!("the media session ended before the new keys");
            }
        }
        self.keys = Some(new);
    }

    async fn tell_hold_state(&mut self, push: &mpsc::Sender<BrowserPush>) {
        if self.held_by_peer == self.browser_told_held {
            return;
        }
        self.browser_told_held = self.held_by_peer;
        tracing::info!(on_hold = self.held_by_peer, "{}", if self.held_by_peer { "the SIP peer holds the call" } else { "the SIP peer resumed the call" });
        let _ = push.send(BrowserPush::RemoteHold { call_id: self.call_id.clone(), on_hold: self.held_by_peer }).await;
    }
}
