//! The probes' quiet panic hook never swallows another thread's panic message. (Its own
//! process: the recording hook must be installed before any probe runs.)
//!
//! The earlier design swapped the process-wide hook around each probe; with many threads one
//! could restore another's silent hook, and later failures printed nothing.

use std::sync::{Arc, Mutex};

#[test]
fn guarded_probes_in_sixteen_threads_leave_every_other_panic_reported() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        record.lock().unwrap().push(msg);
    }));
    let rounds = 200;
    let threads: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                for r in 0..rounds {
                    if t % 2 == 0 {
                        // A probe whose library panics: quiet, and an error.
                        let e = crane_gpu::guarded(|| -> () { panic!("quiet {t}/{r}") }).unwrap_err();
                        assert_eq!(e, format!("quiet {t}/{r}"));
                    } else {
                        // Anything else that panics on another thread must still be reported.
                        let caught = std::panic::catch_unwind(|| panic!("loud {t}/{r}"));
                        assert!(caught.is_err());
                    }
                }
            })
        })
        .collect();
    for h in threads {
        h.join().unwrap();
    }
    let _ = std::panic::take_hook();
    let seen = seen.lock().unwrap();
    let loud = seen.iter().filter(|m| m.starts_with("loud")).count();
    let quiet = seen.iter().filter(|m| m.starts_with("quiet")).count();
    assert_eq!(loud, 8 * rounds, "every panic outside a probe reached the hook");
    assert_eq!(quiet, 0, "no probe's panic was printed");
}
