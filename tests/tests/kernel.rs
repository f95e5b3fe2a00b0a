//! The kernel-facing suite (`integration_tests::kernel_suite`) on the host kernel. The same
//! tests run in every QEMU guest kernel with `cargo xtask vmtest`.

use integration_tests::kernel_suite::{self, Outcome};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

macro_rules! kernel_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                integration_tests::require_root();
                // One at a time, as in the guests: each test's sensor enforces on every
                // container cgroup, so two at once would judge each other's cgroups.
                let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
                if let Outcome::Skip(why) = kernel_suite::$name() {
                    eprintln!("SKIPPED {}: {why}", stringify!($name));
                }
            }
        )*

        /// Every suite entry has a host test above.
        #[test]
        fn suite_is_complete() {
            let here = [$(stringify!($name)),*];
            for (name, _) in kernel_suite::TESTS {
                assert!(here.contains(name), "{name} has no host test in tests/kernel.rs");
            }
            for name in here {
                assert!(
                    kernel_suite::TESTS.iter().any(|(n, _)| *n == name),
                    "{name} is not in kernel_suite::TESTS, so the guests do not run it"
                );
            }
        }
    };
}

kernel_tests!(
    probe_matches_kernel,
    exec_attribution_by_cgroup_layout,
    programs_unloaded_on_sigterm,
    exec_kill_before_the_image_runs,
    exec_block_refuses_with_eperm,
    capability_kill_names_the_syscall,
    capability_block_refuses_with_eperm,
    quiet_capability_probes_are_not_uses,
    network_block_refuses_with_eperm,
    network_kill_kills_the_caller,
    syscall_block_refuses_mount_with_eperm,
    syscall_kill_at_entry,
    the_sensors_objects_are_guarded,
    the_sensors_process_is_guarded,
    segmented_containers_cannot_go_around_the_hooks,
    a_container_cgroup_is_judged_from_its_creation,
    a_containers_sub_cgroups_are_judged_by_its_rules,
);
