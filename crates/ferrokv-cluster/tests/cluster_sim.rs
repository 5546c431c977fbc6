//! Scenarios run in the seeded simulator (`tests/sim`). A failure prints its seed.

mod sim;

use sim::*;

#[test]
fn six_nodes_form_a_cluster() {
    for seed in 0..10 {
        let sim = build_cluster(seed, 6, 3);
        let v = sim.fresh_view(0);
        assert!(v.state_ok);
        assert_eq!(v.size, 3);
    }
}

#[test]
fn print_a_cluster() {
    let sim = build_cluster(99, 6, 3);
    let v = sim.fresh_view(3);
    println!("t={} events={}", sim.now, sim.events);
    print!("{}", ferrokv_cluster::cluster_nodes_text(&v));
    print!("{}", ferrokv_cluster::cluster_info_text(&v));
    print!("{}", sim.nodes[3].saved_conf.as_ref().unwrap());
}
