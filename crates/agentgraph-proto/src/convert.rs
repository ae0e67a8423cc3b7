//! Conversion of decoded events into Hubble's protobuf messages, so recorded or simulated JSON
//! dumps can be served over the gRPC Observer API (the replay server). It carries every field the
//! analyzer reads; fields the JSON scanner skips (ethernet, Summary, policies, ...) are not kept.

use crate::flow;
use crate::observer::GetFlowsResponse;
use crate::observer::get_flows_response::ResponseTypes;
use crate::view::{EndpointView, Event, FlowType, FlowView, L4Protocol, L7Type, TrafficDirection, Verdict};

/// The protobuf timestamp of nanoseconds since the epoch.
pub fn timestamp(nanos: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: nanos.div_euclid(1_000_000_000), nanos: nanos.rem_euclid(1_000_000_000) as i32 }
}

fn endpoint(e: &EndpointView<'_>) -> Option<flow::Endpoint> {
    if e.raw.is_empty() && e.namespace.is_empty() && e.pod_name.is_empty() && e.identity == 0 {
        return None;
    }
    Some(flow::Endpoint {
        id: e.id,
        identity: e.identity,
        cluster_name: e.cluster_name.value().into_owned(),
        namespace: e.namespace.value().into_owned(),
        labels: e.labels.iter().map(|l| l.value().into_owned()).collect(),
        pod_name: e.pod_name.value().into_owned(),
        workloads: e
            .workloads
            .iter()
            .map(|(name, kind)| flow::Workload { name: name.value().into_owned(), kind: kind.value().into_owned() })
            .collect(),
    })
}

/// The `flow.Verdict` number of a verdict.
pub fn verdict(v: Verdict) -> i32 {
    match v {
        Verdict::Unknown | Verdict::Other => 0,
        Verdict::Forwarded => 1,
        Verdict::Dropped => 2,
        Verdict::Error => 3,
        Verdict::Audit => 4,
        Verdict::Redirected => 5,
        Verdict::Traced => 6,
        Verdict::Translated => 7,
    }
}

/// The protobuf `flow.Flow` of a decoded flow.
pub fn flow_from_view(v: &FlowView<'_>) -> flow::Flow {
    let ports = |s: u32, d: u32| (s, d);
    let l4 = match v.l4 {
        L4Protocol::Tcp => {
            let (source_port, destination_port) = ports(v.source_port, v.destination_port);
            Some(flow::layer4::Protocol::Tcp(flow::Tcp { source_port, destination_port, flags: None }))
        }
        L4Protocol::Udp => Some(flow::layer4::Protocol::Udp(flow::Udp {
            source_port: v.source_port,
            destination_port: v.destination_port,
        })),
        L4Protocol::Sctp => Some(flow::layer4::Protocol::Sctp(flow::Sctp {
            source_port: v.source_port,
            destination_port: v.destination_port,
        })),
        L4Protocol::Icmp => Some(flow::layer4::Protocol::IcmPv4(flow::IcmPv4::default())),
        L4Protocol::None | L4Protocol::Other => None,
    };
    let l7 = v.l7.map(|l| flow::Layer7 {
        r#type: match l.kind {
            L7Type::Unknown => 0,
            L7Type::Request => 1,
            L7Type::Response => 2,
            L7Type::Sample => 3,
        },
        latency_ns: l.latency_ns,
        record: match (l.http, l.is_dns) {
            (Some(h), _) => Some(flow::layer7::Record::Http(flow::Http {
                code: h.code,
                method: h.method.value().into_owned(),
                url: h.url.value().into_owned(),
                protocol: h.protocol.value().into_owned(),
                headers: h
                    .headers
                    .iter()
                    .map(|(k, v)| flow::HttpHeader { key: k.value().into_owned(), value: v.value().into_owned() })
                    .collect(),
            })),
            (None, true) => Some(flow::layer7::Record::Dns(flow::Dns::default())),
            (None, false) => None,
        },
    });
    let is_l7 = v.flow_type == FlowType::L7;
    flow::Flow {
        time: Some(timestamp(v.time_ns)),
        uuid: v.uuid.value().into_owned(),
        verdict: verdict(v.verdict),
        ip: (!v.ip_source.is_empty() || !v.ip_destination.is_empty()).then(|| flow::Ip {
            source: v.ip_source.value().into_owned(),
            destination: v.ip_destination.value().into_owned(),
            ip_version: if v.ip_source.raw().contains(&b':') { 2 } else { 1 },
            ..Default::default()
        }),
        l4: l4.map(|p| flow::Layer4 { protocol: Some(p) }),
        source: endpoint(&v.source),
        destination: endpoint(&v.destination),
        r#type: match v.flow_type {
            FlowType::Unknown => 0,
            FlowType::L3L4 => 1,
            FlowType::L7 => 2,
            FlowType::Sock => 3,
        },
        node_name: v.node_name.value().into_owned(),
        destination_names: v.destination_names.iter().map(|n| n.value().into_owned()).collect(),
        l7,
        event_type: is_l7.then_some(flow::CiliumEventType { r#type: 129, sub_type: 0 }),
        traffic_direction: match v.traffic_direction {
            TrafficDirection::Unknown => 0,
            TrafficDirection::Ingress => 1,
            TrafficDirection::Egress => 2,
        },
        is_reply: v.is_reply,
        trace_context: (!v.trace_id.is_empty()).then(|| flow::TraceContext {
            parent: Some(flow::TraceParent { trace_id: v.trace_id.value().into_owned() }),
        }),
        ..Default::default()
    }
}

/// The `GetFlowsResponse` carrying a decoded event (`None` for events the Observer API does not
/// stream, such as agent or debug events).
pub fn response_from_event(ev: &Event<'_>) -> Option<GetFlowsResponse> {
    match ev {
        Event::Flow(f) => Some(GetFlowsResponse {
            node_name: f.node_name.value().into_owned(),
            time: Some(timestamp(f.time_ns)),
            response_types: Some(ResponseTypes::Flow(flow_from_view(f))),
        }),
        Event::LostEvents { time_ns, node_name, num_events_lost } => Some(GetFlowsResponse {
            node_name: node_name.value().into_owned(),
            time: time_ns.map(timestamp),
            response_types: Some(ResponseTypes::LostEvents(flow::LostEvent {
                source: 3,
                num_events_lost: *num_events_lost,
                ..Default::default()
            })),
        }),
        Event::NodeStatus { .. } | Event::Other { .. } => None,
    }
}

/// Nanoseconds since the epoch of a protobuf timestamp.
pub fn nanos(t: &prost_types::Timestamp) -> i64 {
    t.seconds.saturating_mul(1_000_000_000).saturating_add(i64::from(t.nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::decode_line;

    #[test]
    fn round_trips_what_the_analyzer_reads() {
        let line = r#"{"flow":{"time":"2021-11-10T10:40:57.755177Z","verdict":"FORWARDED","IP":{"source":"10.244.1.109","destination":"10.244.0.177","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":9080,"destination_port":35208}},"source":{"identity":2,"namespace":"bookinfo","labels":["reserved:world"],"pod_name":"reviews-v1-545db77b95-j2n72"},"destination":{"ID":881,"identity":3418,"namespace":"bookinfo","labels":["k8s:app=productpage"],"pod_name":"productpage-v1-6b746f74dc-9rcxx","workloads":[{"name":"productpage-v1","kind":"Deployment"}]},"Type":"L7","node_name":"kind-control-plane","l7":{"type":"RESPONSE","latency_ns":"6769400","http":{"code":200,"method":"GET","url":"http://reviews:9080/reviews/0","protocol":"HTTP/1.1","headers":[{"key":"X-Request-Id","value":"fbe9707c"}]}},"reply":true,"traffic_direction":"EGRESS","is_reply":true,"trace_context":{"parent":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}}},"node_name":"kind-control-plane","time":"2021-11-10T10:40:57.755177Z"}"#;
        let Event::Flow(view) = decode_line(line.as_bytes()).unwrap() else { panic!() };
        let proto = flow_from_view(&view);
        let back = FlowView::from_proto(&proto, None).unwrap();
        assert_eq!(back.time_ns, view.time_ns);
        assert_eq!(back.source_port, 9080);
        assert_eq!(back.destination.pod_name.value(), "productpage-v1-6b746f74dc-9rcxx");
        assert_eq!(back.destination.workloads.iter().count(), 1);
        assert_eq!(back.l7.unwrap().latency_ns, 6_769_400);
        assert_eq!(back.l7.unwrap().http.unwrap().headers.iter().count(), 1);
        assert_eq!(back.is_reply, Some(true));
        assert_eq!(back.traffic_direction, TrafficDirection::Egress);
        assert_eq!(back.trace_id.value(), "4bf92f3577b34da6a3ce929d0e0e4736");
        use prost::Message;
        let bytes = proto.encode_to_vec();
        assert_eq!(flow::Flow::decode(&bytes[..]).unwrap(), proto);
    }
}
