//! Bucket objects, which anyone with write access to the bucket can replace: any bytes
//! open to contents or a typed error without panicking (age header, decryption, the
//! plaintext's layout, the writer's signature, the name check), any plaintext parses or
//! is refused, and what a member seals opens back to the same contents.
#![no_main]

use leanspec_peer_core::bucket::object::{self, Contents, Kind, ObjectName};
use leanspec_peer_core::identity::Identity;
use leanspec_peer_core::machine::DocKey;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static ME: LazyLock<Identity> = LazyLock::new(|| Identity::generate().expect("key"));

fuzz_target!(|input: (u8, u64, Vec<u8>)| {
    let (mode, seq, bytes) = input;
    let name = ObjectName {
        writer: ME.id(),
        seq,
        kind: if mode & 1 == 0 {
            Kind::Chunk
        } else {
            Kind::Snapshot
        },
    };
    match mode % 3 {
        0 => {
            let _ = object::parse(&bytes);
        }
        1 => {
            let _ = object::open(&ME, &name, &bytes, 1 << 20);
        }
        _ => {
            let contents = Contents {
                name,
                written_at: seq as i64,
                sections: bytes
                    .chunks(64)
                    .take(8)
                    .enumerate()
                    .map(|(i, c)| {
                        let key = if i % 2 == 0 {
                            DocKey::Mesh
                        } else {
                            DocKey::Machine(ME.id())
                        };
                        (key, c.to_vec())
                    })
                    .collect(),
            };
            let sealed = object::seal(&ME, &[ME.id()], &contents).expect("seal");
            assert_eq!(object::open(&ME, &name, &sealed, u64::MAX), Ok(contents));
        }
    }
});
