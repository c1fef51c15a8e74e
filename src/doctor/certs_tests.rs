//! Unit tests for the certificate checks: the PKI `certs init` makes passes; certificates
//! rcgen can make wrong on purpose fail in the expected way.

use super::*;
use crate::pki::{self, PkiOptions};
use ::time::{Duration, OffsetDateTime};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn good_pki() -> pki::DevPki {
    pki::generate(&PkiOptions {
        tunnel_id: "acme".into(),
        tunnel_domain: "mcp.acme.test".into(),
        edge_names: vec!["edge.test".into()],
    })
    .unwrap()
}

/// A CA like `certs init` makes, as (DER, issuer).
fn ca(key_usages: Vec<KeyUsagePurpose>, is_ca: IsCa) -> (Vec<u8>, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "test CA");
    params.is_ca = is_ca;
    params.key_usages = key_usages;
    let key = KeyPair::generate().unwrap();
    let der = params.self_signed(&key).unwrap().der().to_vec();
    (der, Issuer::new(params, key))
}

fn good_ca() -> (Vec<u8>, Issuer<'static, KeyPair>) {
    ca(
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature],
        IsCa::Ca(BasicConstraints::Constrained(0)),
    )
}

/// A server leaf; `tweak` breaks what a test is about.
fn leaf(issuer: &Issuer<'_, KeyPair>, tweak: impl FnOnce(&mut CertificateParams)) -> Vec<u8> {
    let mut params = CertificateParams::new(vec!["*.mcp.acme.test".to_owned()]).unwrap();
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(90);
    tweak(&mut params);
    params.signed_by(&KeyPair::generate().unwrap(), issuer).unwrap().der().to_vec()
}

fn whats(issues: &[Issue]) -> Vec<(Verdict, String)> {
    issues.iter().map(|i| (i.verdict, i.what.clone())).collect()
}

#[test]
fn the_generated_pki_passes_every_check() {
    let pki = good_pki();
    for ca in [&pki.edge_ca, &pki.tunnel_ca, &pki.inner_ca] {
        assert_eq!(whats(&check_cert(&ca.cert_der, Role::Ca, true, None, now())), vec![]);
    }
    let inner = check_cert(&pki.inner_server.cert_der, Role::Server, true, Some(&pki.inner_ca.cert_der), now());
    assert_eq!(whats(&inner), vec![]);
    let client = check_cert(&pki.gateway_client.cert_der, Role::Client, true, Some(&pki.tunnel_ca.cert_der), now());
    assert_eq!(whats(&client), vec![]);
    let text = describe(&pki.inner_server.cert_der, now());
    assert!(text.contains("ECDSA P-256") && text.contains("ECDSA-SHA256") && text.contains("valid 9"), "{text}");
}

#[test]
fn missing_or_wrong_eku_fails_a_server_certificate() {
    let (ca_der, issuer) = good_ca();
    let none = leaf(&issuer, |p| p.extended_key_usages.clear());
    let issues = check_cert(&none, Role::Server, true, Some(&ca_der), now());
    assert_eq!(whats(&issues), vec![(Verdict::Fail, "has no ExtendedKeyUsage (serverAuth expected)".into())]);
    // Outside the inner chain, rustls accepts a certificate without EKU: a warning.
    let issues = check_cert(&none, Role::Server, false, Some(&ca_der), now());
    assert_eq!(issues[0].verdict, Verdict::Warn);
    let client_only = leaf(&issuer, |p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth]);
    let issues = check_cert(&client_only, Role::Server, false, Some(&ca_der), now());
    assert_eq!(whats(&issues), vec![(Verdict::Fail, "ExtendedKeyUsage lacks serverAuth".into())]);
}

#[test]
fn missing_san_fails() {
    let (ca_der, issuer) = good_ca();
    let der = leaf(&issuer, |p| p.subject_alt_names.clear());
    let issues = check_cert(&der, Role::Server, true, Some(&ca_der), now());
    assert_eq!(whats(&issues), vec![(Verdict::Fail, "has no DNS or IP subjectAltName".into())]);
    assert_eq!(uncovered_hosts(&der, &["a.mcp.acme.test".into()]).unwrap().1, vec!["a.mcp.acme.test".to_owned()]);
}

#[test]
fn validity_windows() {
    let (ca_der, issuer) = good_ca();
    let soon = leaf(&issuer, |p| p.not_after = OffsetDateTime::now_utc() + Duration::days(10));
    let issues = check_cert(&soon, Role::Server, true, Some(&ca_der), now());
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].verdict, Verdict::Warn);
    assert!(issues[0].what.starts_with("expires in 9 days") || issues[0].what.starts_with("expires in 10 days"));
    assert_eq!(issues[0].fix, None, "the caller supplies the renewal command");

    let expired = leaf(&issuer, |p| {
        p.not_before = OffsetDateTime::now_utc() - Duration::days(100);
        p.not_after = OffsetDateTime::now_utc() - Duration::days(1);
    });
    let issues = check_cert(&expired, Role::Server, true, Some(&ca_der), now());
    assert_eq!(issues[0].verdict, Verdict::Fail);
    assert!(issues[0].what.starts_with("expired on "), "{issues:?}");

    let future = leaf(&issuer, |p| p.not_before = OffsetDateTime::now_utc() + Duration::days(2));
    let issues = check_cert(&future, Role::Server, true, Some(&ca_der), now());
    assert!(issues[0].what.starts_with("is not valid before"), "{issues:?}");
    assert_eq!(issues[0].verdict, Verdict::Fail);
}

#[test]
fn a_non_ca_issuer_fails_as_a_ca() {
    let (der, _) = ca(vec![], IsCa::NoCa);
    let issues = whats(&check_cert(&der, Role::Ca, true, None, now()));
    assert!(issues.contains(&(Verdict::Fail, "is not a CA (no BasicConstraints)".into())), "{issues:?}");
    assert!(issues.contains(&(Verdict::Fail, "has no SubjectKeyIdentifier".into())), "{issues:?}");
    assert!(issues.contains(&(Verdict::Fail, "has no KeyUsage (keyCertSign expected)".into())), "{issues:?}");
    let (der, _) = ca(vec![KeyUsagePurpose::DigitalSignature], IsCa::Ca(BasicConstraints::Unconstrained));
    let issues = whats(&check_cert(&der, Role::Ca, false, None, now()));
    assert_eq!(issues, vec![(Verdict::Fail, "KeyUsage lacks keyCertSign (it may not sign certificates)".into())]);
}

#[test]
fn a_certificate_from_another_ca_is_caught() {
    let (_, issuer) = good_ca();
    let (other_der, _) = good_ca();
    let der = leaf(&issuer, |_| {});
    let issues = whats(&check_cert(&der, Role::Server, true, Some(&other_der), now()));
    assert!(
        issues.contains(&(
            Verdict::Fail,
            "AuthorityKeyIdentifier does not match its issuer's SubjectKeyIdentifier".into()
        )),
        "{issues:?}"
    );
    assert!(issues.iter().any(|(_, w)| w.starts_with("is not signed by the CA")), "{issues:?}");
    let no_aki = leaf(&issuer, |p| p.use_authority_key_identifier_extension = false);
    let (ca_der, _) = (good_ca().0, ());
    let issues = whats(&check_cert(&no_aki, Role::Server, true, Some(&ca_der), now()));
    assert!(issues.contains(&(Verdict::Fail, "has no AuthorityKeyIdentifier".into())), "{issues:?}");
}

#[test]
fn stronger_keys_pass_and_are_named() {
    for (alg, name) in [(&rcgen::PKCS_ECDSA_P384_SHA384, "ECDSA P-384"), (&rcgen::PKCS_ED25519, "Ed25519")] {
        let mut params = CertificateParams::new(vec!["a.test".to_owned()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let der = params.self_signed(&KeyPair::generate_for(alg).unwrap()).unwrap().der().to_vec();
        assert_eq!(whats(&check_cert(&der, Role::Server, false, None, now())), vec![], "{name}");
        assert!(describe(&der, now()).contains(name), "{name}");
    }
}

#[test]
fn wildcards_cover_one_label() {
    assert!(name_matches("*.mcp.acme.test", "tickets.mcp.acme.test"));
    assert!(name_matches("*.mcp.acme.test", "Tickets.MCP.acme.test."));
    assert!(!name_matches("*.mcp.acme.test", "a.b.mcp.acme.test"));
    assert!(!name_matches("*.mcp.acme.test", "mcp.acme.test"));
    assert!(name_matches("mcp.acme.test", "mcp.acme.test"));
    assert!(!name_matches("mcp.acme.test", "x.mcp.acme.test"));
    let pki = good_pki();
    let hosts = vec!["a.mcp.acme.test".to_owned(), "mcp.acme.test".to_owned(), "b.other.test".to_owned()];
    let (names, missing) = uncovered_hosts(&pki.inner_server.cert_der, &hosts).unwrap();
    assert_eq!(names, vec!["*.mcp.acme.test".to_owned(), "mcp.acme.test".to_owned()]);
    assert_eq!(missing, vec!["b.other.test".to_owned()]);
}

#[test]
fn issuers_are_found_by_subject() {
    let pki = good_pki();
    let cands = vec![pki.edge_ca.cert_der.clone(), pki.inner_ca.cert_der.clone()];
    assert_eq!(find_issuer(&pki.inner_server.cert_der, &cands), Some(&cands[1]));
    assert_eq!(find_issuer(&pki.inner_ca.cert_der, &cands), None, "a self-signed CA is not its own issuer here");
}
