//! TLS to PostgreSQL, with libpq's `sslmode`s, against an ephemeral cluster
//! that refuses unencrypted TCP (`hostnossl … reject`) and serves a
//! certificate for `localhost` from a test CA made with `openssl`. Both
//! Lifeboat's own connection and its `pg_dump`/`pg_restore` children must
//! encrypt, or the server turns them away.

mod common;

use common::{error_line, lifeboat, run};

use std::path::Path;
use std::process::Command;

use lifeboat_tests::pg::{PgCluster, chown_to_server_user, sample_fingerprint, sample_schema};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`<name>.pem`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// `server.crt`/`server.key` for DNS name `localhost` only, signed by `ca`.
fn make_server_cert(dir: &Path, ca: &str) {
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

#[test]
fn sslmodes_encrypt_verify_and_refuse_as_libpq_does() {
    let Some(pg) = PgCluster::start_default() else {
        return;
    };
    sample_schema(&pg, "shop", 500);
    let tls = pg.dir().join("tls");
    std::fs::create_dir(&tls).unwrap();
    make_ca(&tls, "test-ca");
    make_ca(&tls, "other-ca");
    make_server_cert(&tls, "test-ca");
    for f in ["server.crt", "server.key"] {
        chown_to_server_user(&tls.join(f));
    }
    chown_to_server_user(&tls);
    pg.append_conf(&format!(
        "ssl = on\nssl_cert_file = '{0}/server.crt'\nssl_key_file = '{0}/server.key'",
        tls.display()
    ));
    std::fs::write(
        pg.data_dir().join("pg_hba.conf"),
        "local all all trust\n\
         hostssl all all 127.0.0.1/32 trust\n\
         hostnossl all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    pg.reload();

    let port = pg.port();
    let ca = tls.join("test-ca.pem");
    let other_ca = tls.join("other-ca.pem");
    let url = |host: &str, db: &str, params: &str| {
        format!("postgres://postgres@{host}:{port}/{db}{params}")
    };
    let dir = tempfile::tempdir().unwrap();
    let backup = |u: &str| run(lifeboat(dir.path()).args(["backup", u, "--to", "b"]));

    // Without TLS the server says no, and the error says why.
    let (code, _, err) = backup(&url("127.0.0.1", "shop", "?sslmode=disable"));
    assert_eq!(code, 2, "{err}");
    assert!(error_line(&err).contains("no encryption"), "{err}");

    // The default (prefer) and require encrypt without checking the
    // certificate; so must pg_dump, or hostnossl turns it away.
    for params in ["", "?sslmode=require"] {
        let (code, out, err) = backup(&url("127.0.0.1", "shop", params));
        assert_eq!(code, 0, "{params}: {err}");
        assert!(out.contains("pg-rows:pass"), "{out}");
    }

    // verify-full checks the chain and the name: right for localhost, wrong
    // for 127.0.0.1 (not in the certificate) and for another CA.
    let verify =
        |mode: &str, root: &Path| format!("?sslmode={mode}&sslrootcert={}", root.display());
    let (code, _, err) = backup(&url("localhost", "shop", &verify("verify-full", &ca)));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = backup(&url("127.0.0.1", "shop", &verify("verify-full", &ca)));
    assert_eq!(code, 2, "{err}");
    assert!(
        error_line(&err).to_lowercase().contains("certificate"),
        "{err}"
    );
    let (code, _, err) = backup(&url("localhost", "shop", &verify("verify-full", &other_ca)));
    assert_eq!(code, 2, "{err}");
    assert!(error_line(&err).contains("trusted root"), "{err}");
    // verify-ca checks the chain only.
    let (code, _, err) = backup(&url("127.0.0.1", "shop", &verify("verify-ca", &ca)));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = backup(&url("127.0.0.1", "shop", &verify("verify-ca", &other_ca)));
    assert_eq!(code, 2, "{err}");

    // Bad settings are usage errors, before any connection.
    let (code, _, err) = backup(&url("localhost", "shop", "?sslmode=verify_full"));
    assert_eq!(code, 64, "{err}");
    assert!(error_line(&err).contains("unknown sslmode"), "{err}");
    let missing = tls.join("missing.pem");
    let (code, _, err) = backup(&url("localhost", "shop", &verify("verify-full", &missing)));
    assert_eq!(code, 64, "{err}");
    assert!(error_line(&err).contains("missing.pem"), "{err}");

    // Restore over verify-full: Lifeboat's connections and pg_restore's.
    let (code, _, err) = run(lifeboat(dir.path()).args([
        "restore",
        "--from",
        "b",
        "--latest",
        "--to",
        &url("localhost", "shop_copy", &verify("verify-full", &ca)),
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        sample_fingerprint(&pg, "shop"),
        sample_fingerprint(&pg, "shop_copy")
    );
}
