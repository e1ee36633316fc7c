use leanspec_peer_core::doc::{MachineDoc, MachineInfo};
use leanspec_peer_core::identity::Identity;
use leanspec_peer_core::spec;
fn main() {
    let id = Identity::generate().unwrap().id();
    let info = MachineInfo {
        id: id.to_string(),
        label: "x".into(),
        version: "0".into(),
        os: "linux".into(),
    };
    let mut d = MachineDoc::new(id, &info, 0);
    let first = d.save();
    println!("first save {}", first.len());
    d.put_project("p", "p");
    let w = spec::walk(std::path::Path::new("/work/shared/corpus/lean-spec-specs"));
    let mut warn = vec![];
    for f in &w.specs {
        let s = spec::load(&f.name, &f.dir, &mut warn);
        d.put_spec("p", &s);
    }
    d.commit(0);
    let inc = d.save_incremental();
    println!("incremental {}", inc.len());
    println!("full save {}", d.save().len());
}
