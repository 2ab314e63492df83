//! Carrying out what `SipLeg::execute` queued, against the SIP endpoint and the media session.
//! The endpoint never waits on a call, so this cannot block on anything that waits on the call.

use super::{Placement, SipLeg, SipOp, DIGIT_MS};
use crate::call::machine::{EndReason, LegInput, LegKind, SessionDesc};
use crate::media::engine::SessionHandle;
use crate::sip::endpoint::StatusHandle;

impl SipLeg {
    /// Carries out what `execute` queued.
    pub async fn flush(&mut self, sip: &StatusHandle, media: Option<&SessionHandle>) {
        while let Some(op) = self.ops.pop_front() {
            // The media session starts once a WebRTC answer is applied: what follows waits for it.
            let then_start_media = matches!(op, SipOp::WebRtcAnswer(_));
            self.run(op, sip, media).await;
            if then_start_media {
                break;
            }
        }
    }

    async fn run(&mut self, op: SipOp, sip: &StatusHandle, media: Option<&SessionHandle>) {
        let Some(id) = self.id else {
            if let SipOp::Place = op {
                self.place(sip).await;
            }
            return;
        };
        match op {
            SipOp::Place => {}
            SipOp::Ringing => sip.call_ringing(id).await,
            SipOp::Answer => match sip.call_answer(id, self.sdp.local.to_string()).await {
                Ok(()) => self.inputs.push_back(LegInput::AnswerDelivered),
                // A CANCEL that got there first arrives as the call's end.
                Err(e) => tracing::info!(error = %e, "cannot answer the SIP side"),
            },
            SipOp::Reject(status) => {
                self.ended_by_us = true;
                sip.call_reject(id, status).await;
            }
            SipOp::End => {
                self.ended_by_us = !self.ended;
                if self.caller {
                    sip.call_hangup(id).await;
                } else {
                    sip.outbound_hangup(id).await;
                }
            }
            SipOp::Hold(hold) => {
                let offer = self.sdp.hold_offer(hold);
                if let Err(e) = sip.call_reoffer(id, offer).await {
                    self.sdp.offer_refused();
                    let result = Err(crate::call::machine::HoldFailure::Refused(e));
                    self.inputs.push_back(LegInput::HoldResult { result });
                }
            }
            SipOp::OfferAnswered(sdp) => {
                let answered = match self.sdp.webrtc {
                    true => self.sdp.webrtc_offer_answered(media, self.media_ready.as_ref(), &sdp).await,
                    false => self.sdp.offer_answered(media, &sdp).await,
                };
                let result = answered.map_err(crate::call::machine::HoldFailure::Refused);
                self.inputs.push_back(LegInput::HoldResult { result });
            }
            SipOp::Reanswer => {
                let answer = match self.sdp.webrtc_reoffer_prepared() {
                    true => self.sdp.apply_webrtc_prepared(media, self.media_ready.as_ref()).await,
                    false => self.sdp.apply_prepared(media).await,
                };
                sip.call_reanswer(id, answer).await;
            }
            SipOp::ReanswerSame(answer) => sip.call_reanswer(id, Ok(answer)).await,
            SipOp::Refuse(status) => sip.call_reanswer(id, Err(status)).await,
            SipOp::Refer(target) => {
                if let Err(e) = sip.call_refer(id, target).await {
                    self.inputs.push_back(LegInput::TransferResult { result: Err(e) });
                }
            }
            SipOp::Dtmf(digits) => {
                let sent = match media {
                    Some(media) => media.send_dtmf(self.sdp.side, &digits, DIGIT_MS).await.map_err(|e| e.to_string()),
                    None => Err("no media yet".to_string()),
                };
                if let Err(e) = sent {
                    tracing::info!(error = %e, "digits not sent");
                }
            }
            SipOp::InfoDtmf(digit, duration_ms) => sip.call_info_dtmf(id, digit, duration_ms).await,
            SipOp::ReferProgress(status) => sip.call_refer_progress(id, status).await,
            SipOp::WebRtcAnswer(sdp) => self.apply_webrtc_answer(sdp).await,
            SipOp::ExpectMedia => {
                if let Some(media) = media {
                    let _ = media.expect_media().await;
                }
            }
        }
    }

    /// Gives the WebRTC peer's answer to its WebRTC leg; the call hears `Answered` once the leg
    /// took it, or the leg's end when it cannot.
    async fn apply_webrtc_answer(&mut self, sdp: String) {
        let Some(webrtc) = self.webrtc.clone() else { return };
        let applied = match crate::sdp::SessionDescription::parse(&sdp) {
            Ok(answer) => match webrtc.set_answer(&crate::call::webrtc_sip::offer_for_leg(&answer)).await {
                Ok(media) => crate::call::webrtc_sip::sip_peer_leg(&media).map(|(config, format)| (answer, media, config, format)).ok_or_else(|| "no codec we handle".to_string()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        match applied {
            Ok((answer, media, config, format)) => {
                self.sdp.webrtc_answered(answer, crate::call::legs::codec_of_encoding(format.encoding));
                self.telephone_event = media.telephone_event.is_some();
                self.media_ready = Some(config);
                self.ops.push_back(SipOp::ExpectMedia);
                self.inputs.push_back(LegInput::Answered { answer: SessionDesc::new(sdp), tag: None });
            }
            Err(e) => {
                self.ops.push_back(SipOp::End);
                self.ended = true;
                let detail = format!("the SIP peer's WebRTC answer cannot be used: {e}");
                self.inputs.push_back(LegInput::Ended { reason: EndReason::LegFailed { kind: LegKind::Sip, detail } });
            }
        }
    }

    async fn place(&mut self, sip: &StatusHandle) {
        let Some(placement) = self.placement.take() else { return };
        let Placement { profile, target, binding, user, events } = placement;
        match sip.place_call(profile.as_deref(), &target, binding.as_deref(), &user, self.sdp.local.to_string(), events).await {
            Ok((id, sip_call_id)) => {
                tracing::info!(profile = profile.as_deref().unwrap_or("(registered phone)"), %target, "calling SIP");
                self.id = Some(id);
                self.placed_call_id = Some(sip_call_id);
            }
            Err(e) => {
                tracing::info!(error = %e, %target, "cannot place the SIP call");
                self.ended = true;
                self.inputs.push_back(LegInput::Rejected { reason: EndReason::NotFound, tag: None });
            }
        }
    }
}
