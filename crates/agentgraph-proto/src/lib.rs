//! Hubble-compatible protobuf types and Hubble JSON decoding.
//!
//! The modules `flow`, `relay`, `observer` and `peer` are generated from the workspace's `proto/`
//! files (a wire-compatible subset of Cilium's Hubble API, same packages, names and field numbers).
//! [`json`] is a targeted scanner for the NDJSON that `hubble observe -o json` and the Hubble
//! exporter print: it reads only the fields an analyzer needs into borrowed views and skips the
//! rest without building a full message.

#![allow(clippy::doc_lazy_continuation)]

pub mod convert;
pub mod json;
pub mod time;
pub mod view;

/// Generated from `proto/flow/flow.proto` (package `flow`).
#[allow(clippy::all, missing_docs)]
pub mod flow {
    tonic::include_proto!("flow");
}

/// Generated from `proto/relay/relay.proto` (package `relay`).
#[allow(clippy::all, missing_docs)]
pub mod relay {
    tonic::include_proto!("relay");
}

/// Generated from `proto/observer/observer.proto` (package `observer`).
#[allow(clippy::all, missing_docs)]
pub mod observer {
    tonic::include_proto!("observer");
}

/// Generated from `proto/peer/peer.proto` (package `peer`).
#[allow(clippy::all, missing_docs)]
pub mod peer {
    tonic::include_proto!("peer");
}

pub use json::{DecodeError, DecodeErrorKind, PairIter, decode_line, decode_line_with};
pub use view::{
    EndpointView, Event, FlowType, FlowView, HeaderList, HeaderPairs, HttpView, JStr, L4Protocol, L7Type, L7View,
    SCANNED_HEADERS, ScannedHeaders, StrList, TrafficDirection, Verdict, WorkloadList,
};
