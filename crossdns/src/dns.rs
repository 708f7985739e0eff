//! The DNS adapter: a `hickory-server` request handler over the [`Index`]. It is the one place
//! that turns the core's [`Answer`] into response codes: records → NOERROR, NODATA → NOERROR
//! with the SOA in the authority section, NXDOMAIN with the SOA (RFC 2308), REFUSED for zones
//! we do not serve, SERVFAIL before the first sync.
//!
//! Truncation: a UDP answer larger than the client's EDNS buffer (512 bytes without EDNS,
//! never more than `--max-udp-payload`) is cut at a record boundary with TC set by hickory's
//! encoder; the client retries over TCP, where the limit is 64 KiB.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, SOA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::debug;

use crate::core::{Answer, Index, QueryName, QueryType, RecordData, Soa, TTL};
use crate::metrics::Metrics;

/// The index as shared between the watches (writers) and the handler (readers).
pub type SharedIndex = Arc<RwLock<Index>>;

/// Answers queries from the index.
#[derive(Clone, Debug)]
pub struct Handler {
    index: SharedIndex,
    metrics: Arc<Metrics>,
    max_udp_payload: u16,
}

impl Handler {
    /// A handler over `index`; UDP answers never exceed `max_udp_payload` bytes (at least 512).
    pub fn new(index: SharedIndex, metrics: Arc<Metrics>, max_udp_payload: u16) -> Self {
        Self {
            index,
            metrics,
            max_udp_payload: max_udp_payload.max(512),
        }
    }
}

/// What the handler decided, before it is encoded.
struct Reply {
    rcode: ResponseCode,
    answers: Vec<Record>,
    soa: Vec<Record>,
}

impl Reply {
    fn code(rcode: ResponseCode) -> Self {
        Self {
            rcode,
            answers: Vec::new(),
            soa: Vec::new(),
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let started = Instant::now();
        let mut response_edns = None;
        if let Some(edns) = &request.edns {
            let mut ours = Edns::new();
            ours.set_max_payload(edns.max_payload().clamp(512, self.max_udp_payload));
            ours.set_version(0);
            response_edns = Some(ours);
        }
        let (qtype_label, reply) = match request.queries.queries() {
            [query] => {
                let qtype = query.query_type();
                let reply = if request.metadata.op_code != OpCode::Query {
                    Reply::code(ResponseCode::NotImp)
                } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
                    Reply::code(ResponseCode::BADVERS)
                } else {
                    self.answer(query.name(), qtype)
                };
                (<&'static str>::from(qtype), reply)
            }
            _ => ("none", Reply::code(ResponseCode::FormErr)),
        };
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative =
            matches!(reply.rcode, ResponseCode::NoError | ResponseCode::NXDomain);
        metadata.response_code = reply.rcode;
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &response_edns {
            builder.edns(edns);
        }
        let response = builder.build(metadata, &reply.answers, [], &reply.soa, []);
        let info = match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                debug!(%error, "cannot send a response");
                let mut failed = Metadata::response_from_request(&request.metadata);
                failed.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_server::proto::op::Header {
                    metadata: failed,
                    counts: Default::default(),
                })
            }
        };
        self.metrics
            .answered(qtype_label, rcode_label(reply.rcode), started.elapsed());
        info
    }
}

impl Handler {
    fn answer(&self, name: &hickory_server::proto::rr::LowerName, qtype: RecordType) -> Reply {
        let qname = QueryName::from_labels(name.iter());
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        let owner = Name::from(name.clone());
        match index.lookup(qname.as_ref(), query_type(qtype)) {
            Answer::Records(records) => Reply {
                rcode: ResponseCode::NoError,
                answers: records.iter().map(|r| to_record(&owner, r)).collect(),
                soa: Vec::new(),
            },
            Answer::NoData(soa) => Reply {
                rcode: ResponseCode::NoError,
                answers: Vec::new(),
                soa: vec![soa_record(soa)],
            },
            Answer::NxDomain(soa) => Reply {
                rcode: ResponseCode::NXDomain,
                answers: Vec::new(),
                soa: vec![soa_record(soa)],
            },
            Answer::NotOurZone => Reply::code(ResponseCode::Refused),
            Answer::NotSynced => Reply::code(ResponseCode::ServFail),
        }
    }
}

/// The metric label of the codes the handler answers with (their `Debug` names).
fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NoError",
        ResponseCode::FormErr => "FormErr",
        ResponseCode::ServFail => "ServFail",
        ResponseCode::NXDomain => "NXDomain",
        ResponseCode::NotImp => "NotImp",
        ResponseCode::Refused => "Refused",
        ResponseCode::BADVERS => "BADVERS",
        _ => "Other",
    }
}

fn query_type(qtype: RecordType) -> QueryType {
    match qtype {
        RecordType::A => QueryType::A,
        RecordType::AAAA => QueryType::Aaaa,
        RecordType::SRV => QueryType::Srv,
        RecordType::TXT => QueryType::Txt,
        RecordType::SOA => QueryType::Soa,
        RecordType::ANY => QueryType::Any,
        _ => QueryType::Other,
    }
}

/// A name we built ourselves (labels of Kubernetes names); the root if it somehow is not one,
/// which a client sees as a useless but harmless target.
fn fqdn(text: &str) -> Name {
    let mut name = Name::from_ascii(text).unwrap_or_else(|_| Name::root());
    name.set_fqdn(true);
    name
}

fn to_record(owner: &Name, data: &RecordData) -> Record {
    let rdata = match data {
        RecordData::A(ip) => RData::A(A(*ip)),
        RecordData::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, fqdn(target))),
        RecordData::Txt(text) => RData::TXT(TXT::new(vec![text.clone()])),
        RecordData::Soa(soa) => return soa_record(soa),
    };
    Record::from_rdata(owner.clone(), TTL, rdata)
}

fn soa_record(soa: &Soa) -> Record {
    let rdata = SOA::new(
        fqdn(&soa.mname),
        fqdn(&soa.rname),
        soa.serial,
        soa.refresh,
        soa.retry,
        soa.expire,
        soa.minimum,
    );
    Record::from_rdata(fqdn(&soa.zone), soa.minimum, RData::SOA(rdata))
}
