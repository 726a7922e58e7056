//! Certificate authorities: one per organization, signing the TLS certificates its store nodes
//! serve, so that clients can verify a node with `sslmode=verify-full` and the organization's
//! CA (and another organization's CA fails).

use std::net::IpAddr;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

use crate::domain::OrgId;

/// The CA's identity, rebuilt the same way every time: what a signed certificate's issuer must
/// match. Only the validity differs between the stored certificate and this.
fn ca_params(org_id: OrgId) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Berth");
    dn.push(DnType::CommonName, format!("Berth CA {org_id}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

/// A new CA for the organization: (certificate PEM, private key PEM), valid ten years.
pub fn new_ca(org_id: OrgId, now: OffsetDateTime) -> anyhow::Result<(String, SecretString)> {
    let key = KeyPair::generate().context("generating a CA key")?;
    let mut params = ca_params(org_id);
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(3650);
    let cert = params.self_signed(&key).context("signing the CA certificate")?;
    Ok((cert.pem(), SecretString::from(key.serialize_pem())))
}

/// A server certificate signed by the organization's CA for `hosts` (names and addresses),
/// valid a year: (certificate chain PEM, private key PEM).
pub fn issue_server_cert(
    org_id: OrgId,
    ca_key_pem: &SecretString,
    hosts: &[&str],
    now: OffsetDateTime,
) -> anyhow::Result<(String, SecretString)> {
    let ca_key = KeyPair::from_pem(ca_key_pem.expose_secret()).context("reading the CA key")?;
    let issuer = ca_params(org_id).self_signed(&ca_key).context("rebuilding the CA")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, hosts.first().copied().unwrap_or("localhost"));
    params.distinguished_name = dn;
    params.subject_alt_names = hosts
        .iter()
        .map(|h| match h.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName((*h).try_into().context("host name")?)),
        })
        .collect::<anyhow::Result<_>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365);
    let key = KeyPair::generate().context("generating a server key")?;
    let cert = params.signed_by(&key, &issuer, &ca_key).context("signing the server certificate")?;
    Ok((cert.pem(), SecretString::from(key.serialize_pem())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_certificate_chains_to_its_orgs_ca_only() {
        use rustls::client::danger::ServerCertVerifier;
        let now = OffsetDateTime::now_utc();
        let org = OrgId::new();
        let (ca_pem, ca_key) = new_ca(org, now).unwrap();
        let (cert_pem, _) = issue_server_cert(org, &ca_key, &["localhost", "127.0.0.1"], now).unwrap();
        let verify = |ca: &str| {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile_certs(ca) {
                roots.add(c).unwrap();
            }
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots.into(),
                rustls::crypto::ring::default_provider().into(),
            )
            .build()
            .unwrap();
            let leaf = rustls_pemfile_certs(&cert_pem).remove(0);
            verifier.verify_server_cert(
                &leaf,
                &[],
                &rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
        };
        assert!(verify(&ca_pem).is_ok());
        let (other_ca, _) = new_ca(OrgId::new(), now).unwrap();
        assert!(verify(&other_ca).is_err());
    }

    fn rustls_pemfile_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).map(Result::unwrap).collect()
    }
}
