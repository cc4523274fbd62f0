//! Test certificates, generated at test time with rcgen and written as PEM
//! files into a temporary directory: a CA, a server certificate it signs
//! (for `localhost` and `127.0.0.1`), a client certificate it signs, and a
//! second, unrelated CA with a client certificate of its own (for "wrong
//! CA" cases). Shared by the root TLS tests and the CLI's
//! (`#[path = "../../tests/pki/mod.rs"]`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// PEM files of one test PKI; deleted with the value.
pub struct Pki {
    _dir: tempfile::TempDir,
    /// The CA that signs the server and client certificates.
    pub ca: PathBuf,
    /// Server certificate (SANs `localhost`, `127.0.0.1`) and key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Client certificate (signed by `ca`) and key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed none of the above.
    pub other_ca: PathBuf,
    /// A client certificate signed by `other_ca`, and its key.
    pub other_client_cert: PathBuf,
    pub other_client_key: PathBuf,
}

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { cert, key }
    }

    /// A leaf certificate for `names`, for `usage`: (certificate PEM, key PEM).
    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("leaf certificate");
        (cert.pem(), key.serialize_pem())
    }
}

impl Pki {
    /// Generates everything into a fresh temporary directory.
    pub fn generate() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, pem: &str| -> PathBuf {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("write PEM");
            path
        };
        let ca = Ca::new("skiff test CA");
        let other = Ca::new("some other CA");
        let (server_cert, server_key) = ca.issue(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) =
            ca.issue(&["skiff-test-client"], ExtendedKeyUsagePurpose::ClientAuth);
        let (other_client_cert, other_client_key) =
            other.issue(&["stranger"], ExtendedKeyUsagePurpose::ClientAuth);
        Pki {
            ca: write("ca.pem", &ca.cert.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            other_ca: write("other-ca.pem", &other.cert.pem()),
            other_client_cert: write("other-client.pem", &other_client_cert),
            other_client_key: write("other-client.key", &other_client_key),
            _dir: dir,
        }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}
