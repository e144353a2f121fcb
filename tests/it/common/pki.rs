//! Certificates made at run time with rcgen (no key is committed): a CA,
//! a server certificate for 127.0.0.1 and localhost, and client
//! certificates, written as PEM files into a temporary directory.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, Identity};

use super::TempDir;

/// A certificate authority and the files of a server certificate it signed.
pub(crate) struct Pki {
    pub(crate) dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    pub(crate) ca_pem: String,
}

/// A certificate and its key, as PEM.
pub(crate) struct Issued {
    pub(crate) cert: String,
    pub(crate) key: String,
}

impl Pki {
    pub(crate) fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::CommonName, format!("tradewire test CA {name}"));
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_pem = ca.pem();
        Pki {
            dir: TempDir::new(&format!("pki-{name}")),
            ca,
            ca_pem,
        }
    }

    /// A certificate for `names` signed by this CA.
    pub(crate) fn issue(&self, names: &[&str]) -> Issued {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "tradewire test");
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// Writes `contents` to `name` in the directory; returns its path.
    pub(crate) fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Server files for 127.0.0.1 and localhost: (cert, key).
    pub(crate) fn server_files(&self, tag: &str) -> (PathBuf, PathBuf) {
        let issued = self.issue(&["127.0.0.1", "localhost"]);
        (
            self.write(&format!("server-{tag}.crt"), &issued.cert),
            self.write(&format!("server-{tag}.key"), &issued.key),
        )
    }

    pub(crate) fn ca_certificate(&self) -> Certificate {
        Certificate::from_pem(&self.ca_pem)
    }

    pub(crate) fn client_identity(&self) -> Identity {
        let issued = self.issue(&["client.test"]);
        Identity::from_pem(issued.cert, issued.key)
    }
}
