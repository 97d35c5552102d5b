//! The JobSet object (`jobset.x-k8s.io/v1alpha2`), typed after its published CRD.
//!
//! `k8s-openapi` covers only the built-in kinds, and JobSet's own Go types have no Rust
//! counterpart, so the few fields podlab sets are declared here (serde names as in the CRD;
//! the nested Job template is `k8s-openapi`'s). The CRD itself, kept in
//! `tests/fixtures/jobset/`, is what the tests validate this output against.

use k8s_openapi::api::batch::v1::JobTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

/// The API group and version podlab writes.
pub const API_VERSION: &str = "jobset.x-k8s.io/v1alpha2";

/// A JobSet: replicated Jobs that succeed or fail together.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSet {
    /// `apiVersion`: [`API_VERSION`].
    pub api_version: &'static str,
    /// `kind`: `JobSet`.
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    pub spec: JobSetSpec,
}

/// `spec`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSetSpec {
    /// `spec.network`: pod DNS names under a headless Service JobSet creates.
    pub network: Network,
    /// `spec.replicatedJobs`.
    pub replicated_jobs: Vec<ReplicatedJob>,
}

/// `spec.network`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// `enableDNSHostnames`: each pod is `<jobset>-<job>-<job index>-<pod index>.<subdomain>`.
    #[serde(rename = "enableDNSHostnames")]
    pub enable_dns_hostnames: bool,
    /// `subdomain`: the headless Service's name.
    pub subdomain: String,
    /// `publishNotReadyAddresses`: DNS records before the pods are ready, so that ranks find
    /// the master while it starts.
    pub publish_not_ready_addresses: bool,
}

/// `spec.replicatedJobs[]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicatedJob {
    pub name: String,
    /// How many copies of the Job template.
    pub replicas: i32,
    pub template: JobTemplateSpec,
}

/// One replicated job `job` of `template`, once, under a Service named after the JobSet.
pub fn jobset(metadata: ObjectMeta, name: &str, job: &str, template: JobTemplateSpec) -> JobSet {
    JobSet {
        api_version: API_VERSION,
        kind: "JobSet",
        metadata,
        spec: JobSetSpec {
            network: Network {
                enable_dns_hostnames: true,
                subdomain: name.to_owned(),
                publish_not_ready_addresses: true,
            },
            replicated_jobs: vec![ReplicatedJob {
                name: job.to_owned(),
                replicas: 1,
                template,
            }],
        },
    }
}
