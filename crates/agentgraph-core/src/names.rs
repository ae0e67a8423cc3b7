//! Agent naming: turns a Hubble endpoint into the agent name of the analysis contract
//! (`<namespace>/<workload>`, `world[/<dns name>]`, `reserved/<name>`), keeping every pod of one
//! logical agent — ephemeral Job pods included — as one agent.

use std::sync::Arc;

use agentgraph_proto::{EndpointView, JStr};

use crate::record::seeded_hash;
use foldhash::HashMap;

/// Workload kinds whose name is a stable agent name (long-lived controllers).
const CONTROLLER_KINDS: [&str; 5] = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "CronJob"];

/// Default label keys consulted, in order, when no controller workload names the agent.
pub const DEFAULT_NAME_LABELS: [&str; 4] = ["app.kubernetes.io/name", "app", "k8s-app", "agent-role"];

/// How an agent name was derived; a weak name may be replaced by what other flows teach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NameSource {
    /// A controller workload or a configured label.
    Strong,
    /// A non-controller workload name (e.g. a Job's) or the pod name without hash suffixes.
    Weak,
    /// Outside the cluster or a reserved identity.
    Reserved,
}

/// What the analyzer keeps of one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    pub agent: Arc<str>,
    pub source: NameSource,
    /// `namespace/pod`, empty when the endpoint has no pod. Set only by [`EndpointInfo::new`],
    /// which derives the pod's key from it.
    pub pod: Arc<str>,
    /// `namespace/<pod name without hash suffixes>`: the key under which a strong name learned
    /// from one pod of a ReplicaSet also names its siblings seen without labels.
    pub family: Arc<str>,
    /// A 64-bit hash of `pod`, computed once per endpoint: the engine keys a pod's calls by it
    /// several times per call, and hashing the name each time showed in profiles.
    pod_key: u64,
}

impl EndpointInfo {
    /// An endpoint's names; its pod's key is computed here, once.
    pub fn new(agent: Arc<str>, source: NameSource, pod: Arc<str>, family: Arc<str>) -> Self {
        let pod_key = seeded_hash(0x706f_6473, pod.as_bytes());
        EndpointInfo { agent, source, pod, family, pod_key }
    }

    /// A 64-bit hash of [`EndpointInfo::pod`].
    pub fn pod_key(&self) -> u64 {
        self.pod_key
    }
}

/// Names endpoints, caching by the endpoint's raw JSON (the same pod prints the same bytes).
#[derive(Debug)]
pub struct AgentNamer {
    labels: Vec<String>,
    /// Keyed by a 64-bit hash of the endpoint's raw JSON (a collision among the cache's 65,536
    /// entries has odds of about 1 in 10^10; comparing whole ~1 KB keys cost 4 % of run time).
    cache: HashMap<u64, Arc<EndpointInfo>>,
    cache_limit: usize,
    /// Strong names learned per pod family, to resolve weak names consistently.
    families: HashMap<Arc<str>, Arc<str>>,
    strings: StringCache,
}

impl Default for AgentNamer {
    fn default() -> Self {
        Self::new(DEFAULT_NAME_LABELS.iter().map(|s| s.to_string()).collect())
    }
}

impl AgentNamer {
    /// `labels`: label keys consulted in order (without the `k8s:` source prefix).
    pub fn new(labels: Vec<String>) -> Self {
        AgentNamer {
            labels,
            cache: HashMap::default(),
            cache_limit: 65_536,
            families: HashMap::default(),
            strings: StringCache::new(262_144),
        }
    }

    /// Names the endpoint; `url_host` names a world destination when the flow gives no DNS name.
    /// Shared (one reference count per record side, not one per name): every record names two.
    pub fn endpoint(&mut self, e: &EndpointView<'_>, dns_name: Option<JStr<'_>>, url_host: &str) -> Arc<EndpointInfo> {
        let key = if dns_name.is_some() { None } else { cache_key(e) };
        let cacheable = key.is_some();
        let key = key.unwrap_or(0);
        if cacheable && let Some(info) = self.cache.get(&key) {
            if info.source == NameSource::Reserved && &*info.agent == "world" && !url_host.is_empty() {
                let mut named = EndpointInfo::clone(info);
                named.agent = self.world_name(url_host);
                return Arc::new(named);
            }
            return info.clone();
        }
        let info = Arc::new(self.compute(e, dns_name, url_host));
        if info.source == NameSource::Strong && !info.family.is_empty() {
            if self.families.len() >= self.cache_limit {
                self.families.clear();
            }
            self.families.insert(info.family.clone(), info.agent.clone());
        }
        if cacheable && !(info.source == NameSource::Reserved && info.agent.starts_with("world/")) {
            if self.cache.len() >= self.cache_limit {
                // Bounded: a cluster with churning pods refills the cache from live flows.
                self.cache.clear();
            }
            self.cache.insert(key, info.clone());
        }
        info
    }

    /// The best name known now for an endpoint named earlier: a weak name is replaced by the
    /// strong name learned since from another pod of the same family.
    pub fn resolve(&self, info: &EndpointInfo) -> Arc<str> {
        if info.source == NameSource::Weak
            && let Some(strong) = self.families.get(&info.family)
        {
            return strong.clone();
        }
        info.agent.clone()
    }

    /// Interns a short string (method, path) in the namer's bounded cache.
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        self.strings.get(s)
    }

    fn world_name(&mut self, host: &str) -> Arc<str> {
        if host.is_empty() || host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
            return self.strings.get("world");
        }
        let name = format!("world/{}", host.trim_end_matches('.'));
        self.strings.get(&name)
    }

    fn compute(&mut self, e: &EndpointView<'_>, dns_name: Option<JStr<'_>>, url_host: &str) -> EndpointInfo {
        let namespace = e.namespace.value();
        let pod_name = e.pod_name.value();
        let mut reserved: Option<String> = None;
        let mut label_value: Option<(usize, String)> = None;
        for label in e.labels.iter() {
            let label = label.value();
            let (source, kv) = label.split_once(':').unwrap_or(("", &label));
            if source == "reserved" {
                if reserved.is_none() {
                    reserved = Some(kv.to_string());
                }
                continue;
            }
            let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
            if value.is_empty() {
                continue;
            }
            if let Some(rank) = self.labels.iter().position(|l| l == key)
                && label_value.as_ref().is_none_or(|(r, _)| rank < *r)
            {
                label_value = Some((rank, value.to_string()));
            }
        }
        let mut controller: Option<String> = None;
        let mut any_workload: Option<String> = None;
        for (name, kind) in e.workloads.iter() {
            let name = name.value();
            if name.is_empty() {
                continue;
            }
            if controller.is_none() && CONTROLLER_KINDS.iter().any(|k| kind.eq_ignore_ascii_case(k)) {
                controller = Some(name.to_string());
            }
            if any_workload.is_none() {
                any_workload = Some(name.into_owned());
            }
        }

        // An endpoint with a namespace and a pod is in the cluster even when its identity is
        // `reserved:world` (the proxy reported a service address).
        let in_cluster =
            !namespace.is_empty() && (!pod_name.is_empty() || controller.is_some() || label_value.is_some());
        if !in_cluster {
            let agent = match reserved.as_deref() {
                Some(r) if r.starts_with("world") || reserved.is_none() => {
                    let host = dns_name.map(|d| d.value().into_owned()).unwrap_or_else(|| url_host.to_string());
                    self.world_name(&host)
                }
                Some(r) => self.strings.get(&format!("reserved/{r}")),
                None if namespace.is_empty() => {
                    let host = dns_name.map(|d| d.value().into_owned()).unwrap_or_else(|| url_host.to_string());
                    self.world_name(&host)
                }
                None => self.strings.get(&format!("{namespace}/unknown")),
            };
            return EndpointInfo::new(agent, NameSource::Reserved, self.strings.get(""), self.strings.get(""));
        }

        let base = strip_pod_suffixes(&pod_name);
        let family =
            if base.is_empty() { self.strings.get("") } else { self.strings.get(&format!("{namespace}/{base}")) };
        let pod = if pod_name.is_empty() {
            self.strings.get("")
        } else {
            self.strings.get(&format!("{namespace}/{pod_name}"))
        };
        let (workload, source) = if let Some(c) = controller {
            (c, NameSource::Strong)
        } else if let Some((_, v)) = label_value {
            (v, NameSource::Strong)
        } else if let Some(w) = any_workload {
            (strip_pod_suffixes(&w).to_string(), NameSource::Weak)
        } else {
            (base.to_string(), NameSource::Weak)
        };
        let agent = self.strings.get(&format!("{namespace}/{workload}"));
        EndpointInfo::new(agent, source, pod, family)
    }
}

/// The name cache's key for an endpoint: a hash of its JSON as printed, or, for one decoded from
/// protobuf (no JSON to hash), of the fields naming reads. `None` for an absent endpoint.
/// (Protobuf endpoints went uncached at first: naming each anew, with its allocations, took
/// a sixth of the collector's time.)
fn cache_key(e: &EndpointView<'_>) -> Option<u64> {
    if !e.raw.is_empty() {
        return Some(seeded_hash(0x6e61_6d65, e.raw));
    }
    if e.namespace.is_empty() && e.pod_name.is_empty() && e.labels.iter().next().is_none() {
        return None;
    }
    Some(seeded_hash(0x6669_656c_6473, NamingFields(e)))
}

/// What naming reads of an endpoint, hashed in place (no list of its labels is built).
struct NamingFields<'e, 'a>(&'e EndpointView<'a>);

impl std::hash::Hash for NamingFields<'_, '_> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let e = self.0;
        e.namespace.raw().hash(h);
        e.pod_name.raw().hash(h);
        e.labels.iter().for_each(|label| label.raw().hash(h));
        b"workloads:".hash(h);
        e.workloads.iter().for_each(|(name, kind)| (name.raw(), kind.raw()).hash(h));
    }
}

/// Removes the hash suffixes Kubernetes appends to pod names: a ReplicaSet's pod-template hash
/// and pod suffix (`orchestrator-7d9f8c6b5-x2k4q` → `orchestrator`), a Job's or StatefulSet's
/// random suffix (`summarizer-x7k2p` → `summarizer`), but not ordinary name parts (`reviews-v3`).
pub fn strip_pod_suffixes(name: &str) -> &str {
    let mut rest = name;
    for _ in 0..2 {
        match rest.rsplit_once('-') {
            Some((head, tail)) if !head.is_empty() && looks_generated(tail) => rest = head,
            _ => break,
        }
    }
    rest
}

/// A suffix Kubernetes generated: 5 chars from its safe alphabet (pod suffix), 8-10 chars of
/// hash (ReplicaSet template hash), or a number (StatefulSet ordinal), with at least one digit or
/// a consonant-only shape so words such as `worker` are kept.
fn looks_generated(tail: &str) -> bool {
    if tail.is_empty() || !tail.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return false;
    }
    if tail.bytes().all(|c| c.is_ascii_digit()) {
        return true;
    }
    // Kubernetes' random alphabet has no vowels (bcdfghjklmnpqrstvwxz2456789).
    let k8s_alphabet = tail.bytes().all(|c| b"bcdfghjklmnpqrstvwxz2456789".contains(&c));
    match tail.len() {
        5 => k8s_alphabet,
        8..=10 => k8s_alphabet || tail.bytes().any(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// A bounded cache of shared strings: repeated names share one allocation.
#[derive(Debug)]
struct StringCache {
    map: HashMap<Arc<str>, ()>,
    limit: usize,
}

impl StringCache {
    fn new(limit: usize) -> Self {
        StringCache { map: HashMap::default(), limit }
    }

    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some((k, _)) = self.map.get_key_value(s) {
            return k.clone();
        }
        if self.map.len() >= self.limit {
            self.map.clear();
        }
        let k: Arc<str> = Arc::from(s);
        self.map.insert(k.clone(), ());
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_generated_suffixes() {
        assert_eq!(strip_pod_suffixes("orchestrator-7d9f8c6b5-x2k4q"), "orchestrator");
        assert_eq!(strip_pod_suffixes("productpage-v1-6b746f74dc-9rcxx"), "productpage-v1");
        assert_eq!(strip_pod_suffixes("reviews-v3-84779c7bbc-6x8gl"), "reviews-v3");
        assert_eq!(strip_pod_suffixes("kube-dns-b4f5c58c7-vnx5s"), "kube-dns");
        assert_eq!(strip_pod_suffixes("node-local-dns-88zrp"), "node-local-dns");
        assert_eq!(strip_pod_suffixes("summarizer-x7k2p"), "summarizer");
        assert_eq!(strip_pod_suffixes("vectordb-0"), "vectordb");
        assert_eq!(strip_pod_suffixes("coder-worker"), "coder-worker");
        assert_eq!(strip_pod_suffixes("prometheus"), "prometheus");
    }
}
