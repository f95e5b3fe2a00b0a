//! Reading the installed policy: which ruleset applies to the current task, and in which mode.

use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use sensor_common::policy::{MODE_ENFORCE, NO_RULESET};

use crate::maps::{CGROUP_POLICY, POLICY};

/// The active policy for one event.
#[derive(Clone, Copy)]
pub struct Active {
    pub ruleset: u32,
    pub generation: u8,
    pub enforce: bool,
}

impl Active {
    /// As one scalar, for global functions (which take scalars only); 0 is `None`.
    #[inline(always)]
    pub fn pack(active: Option<Active>) -> u64 {
        match active {
            Some(a) => {
                1 << 63
                    | u64::from(a.enforce) << 40
                    | u64::from(a.generation) << 32
                    | u64::from(a.ruleset)
            }
            None => 0,
        }
    }

    #[inline(always)]
    pub fn unpack(packed: u64) -> Option<Active> {
        (packed >> 63 != 0).then_some(Active {
            ruleset: packed as u32,
            generation: (packed >> 32) as u8 & 1,
            enforce: (packed >> 40) & 1 != 0,
        })
    }
}

/// The ruleset of cgroup `cgroup_id` under the active generation. Container cgroups have an
/// entry (possibly NO_RULESET); any other cgroup is the host's. `None` when nothing applies,
/// and always for the sensor itself.
#[inline(always)]
pub fn active(cgroup_id: u64) -> Option<Active> {
    let config = POLICY.get(0)?;
    if (bpf_get_current_pid_tgid() >> 32) as u32 == config.sensor_tgid {
        return None;
    }
    let generation = (config.generation & 1) as usize;
    // SAFETY: a hash map lookup with a valid key; the value is copied out at once.
    let ruleset = match unsafe { CGROUP_POLICY.get(cgroup_id) } {
        Some(p) => p.ruleset[generation],
        None => config.host_ruleset[generation],
    };
    if ruleset == NO_RULESET {
        return None;
    }
    Some(Active {
        ruleset,
        generation: generation as u8,
        enforce: config.mode == MODE_ENFORCE,
    })
}
