//! A small reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): just enough to find struct
//! member offsets and function names.
//!
//! Rust eBPF programs get no CO-RE relocations, so the daemon resolves the offsets it needs here
//! and hands them to the programs (`sensor_common::offsets::KernelOffsets`).

use std::{collections::HashMap, fmt, path::Path};

const BTF_MAGIC: u16 = 0xeb9f;

// BTF_KIND_* values from include/uapi/linux/btf.h.
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug)]
pub enum BtfError {
    Io(std::io::Error),
    Malformed(&'static str),
    UnknownKind(u32),
}

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Malformed(what) => write!(f, "malformed BTF: {what}"),
            Self::UnknownKind(k) => write!(f, "malformed BTF: unknown type kind {k}"),
        }
    }
}

impl std::error::Error for BtfError {}

#[derive(Clone, Debug)]
struct Member {
    name_off: u32,
    type_id: u32,
    /// Offset in bits from the start of the enclosing struct or union.
    bit_offset: u32,
}

#[derive(Clone, Debug)]
enum Type {
    /// Struct or union with its members.
    /// Struct or union: members and size in bytes.
    Composite {
        name_off: u32,
        size: u32,
        members: Vec<Member>,
    },
    Func {
        name_off: u32,
    },
    /// typedef, const, volatile, restrict, type tag: refers to another type.
    Modifier {
        type_id: u32,
    },
    Other,
}

/// Parsed kernel BTF: composites and functions, by id and by name.
pub struct Btf {
    strings: Vec<u8>,
    /// Index 0 is the implicit `void` type.
    types: Vec<Type>,
    struct_by_name: HashMap<String, u32>,
    funcs: HashMap<String, u32>,
}

fn u16_at(data: &[u8], off: usize) -> Result<u16, BtfError> {
    data.get(off..off + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or(BtfError::Malformed("truncated"))
}

fn u32_at(data: &[u8], off: usize) -> Result<u32, BtfError> {
    data.get(off..off + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(BtfError::Malformed("truncated"))
}

impl Btf {
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        Self::parse(&std::fs::read(path).map_err(BtfError::Io)?)
    }

    /// Parses little-endian BTF as the kernel exposes it.
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        if u16_at(data, 0)? != BTF_MAGIC {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let types_data = data
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or(BtfError::Malformed("type section out of bounds"))?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Malformed("string section out of bounds"))?
            .to_vec();

        let mut types = vec![Type::Other];
        let mut pos = 0;
        while pos < types_data.len() {
            let name_off = u32_at(types_data, pos)?;
            let info = u32_at(types_data, pos + 4)?;
            pos += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let size_or_type = u32_at(types_data, pos - 4)?;
            let ty = match kind {
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        let m = pos + i * 12;
                        let raw_offset = u32_at(types_data, m + 8)?;
                        members.push(Member {
                            name_off: u32_at(types_data, m)?,
                            type_id: u32_at(types_data, m + 4)?,
                            bit_offset: if kind_flag {
                                raw_offset & 0x00ff_ffff
                            } else {
                                raw_offset
                            },
                        });
                    }
                    pos += vlen * 12;
                    Type::Composite {
                        name_off,
                        size: size_or_type,
                        members,
                    }
                }
                KIND_FUNC => Type::Func { name_off },
                KIND_INT | KIND_VAR | KIND_DECL_TAG => {
                    pos += 4;
                    Type::Other
                }
                KIND_ARRAY => {
                    pos += 12;
                    Type::Other
                }
                KIND_ENUM | KIND_FUNC_PROTO => {
                    pos += vlen * 8;
                    Type::Other
                }
                KIND_DATASEC | KIND_ENUM64 => {
                    pos += vlen * 12;
                    Type::Other
                }
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    Type::Modifier {
                        type_id: size_or_type,
                    }
                }
                KIND_PTR | KIND_FWD | KIND_FLOAT => Type::Other,
                other => return Err(BtfError::UnknownKind(other)),
            };
            types.push(ty);
        }
        if pos != types_data.len() {
            return Err(BtfError::Malformed("type section has trailing bytes"));
        }

        let mut btf = Self {
            strings,
            types,
            struct_by_name: HashMap::new(),
            funcs: HashMap::new(),
        };
        for (id, ty) in btf.types.iter().enumerate() {
            let (name_off, is_func) = match ty {
                Type::Composite { name_off, .. } => (*name_off, false),
                Type::Func { name_off } => (*name_off, true),
                Type::Modifier { .. } | Type::Other => continue,
            };
            if name_off == 0 {
                continue;
            }
            let name = btf.string(name_off).to_owned();
            let map = if is_func {
                &mut btf.funcs
            } else {
                &mut btf.struct_by_name
            };
            // The first definition wins; vmlinux BTF has one per name.
            map.entry(name).or_insert(id as u32);
        }
        Ok(btf)
    }

    fn string(&self, off: u32) -> &str {
        let rest = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    /// Whether the kernel has a function of this name (for fentry and LSM attach points).
    pub fn has_func(&self, name: &str) -> bool {
        self.funcs.contains_key(name)
    }

    /// Size in bytes of struct or union `name`.
    pub fn struct_size(&self, name: &str) -> Option<u32> {
        match self.types.get(*self.struct_by_name.get(name)? as usize)? {
            Type::Composite { size, .. } => Some(*size),
            _ => None,
        }
    }

    /// Byte offset of `member` in struct or union `composite`, looking through anonymous
    /// nested structs and unions (where recent kernels put many `task_struct` and `mm_struct`
    /// fields).
    pub fn member_offset(&self, composite: &str, member: &str) -> Option<u32> {
        let id = *self.struct_by_name.get(composite)?;
        self.find_member(id, member, 0).map(|bits| bits / 8)
    }

    fn find_member(&self, id: u32, member: &str, depth: u32) -> Option<u32> {
        if depth > 8 {
            return None;
        }
        let Type::Composite { members, .. } = self.types.get(id as usize)? else {
            return None;
        };
        for m in members {
            if m.name_off != 0 && self.string(m.name_off) == member {
                return Some(m.bit_offset);
            }
        }
        for m in members.iter().filter(|m| m.name_off == 0) {
            let inner = self.skip_modifiers(m.type_id);
            if let Some(bits) = self.find_member(inner, member, depth + 1) {
                return Some(m.bit_offset + bits);
            }
        }
        None
    }

    /// Follows typedef/const/volatile chains to the underlying type (bounded against cycles in
    /// malformed input).
    fn skip_modifiers(&self, mut id: u32) -> u32 {
        for _ in 0..16 {
            match self.types.get(id as usize) {
                Some(Type::Modifier { type_id }) => id = *type_id,
                _ => break,
            }
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds BTF bytes. `strings` are placed in order after the leading NUL; `types` are
    /// (name string index or None, info, size_or_type, trailing words), where a trailing word
    /// given as `S(i)` is replaced by the offset of string `i`.
    enum W {
        N(u32),
        S(usize),
    }

    fn build(strings: &[&str], types: &[(Option<usize>, u32, u32, Vec<W>)]) -> Vec<u8> {
        let mut strs = vec![0u8];
        let mut offs = Vec::new();
        for s in strings {
            offs.push(strs.len() as u32);
            strs.extend_from_slice(s.as_bytes());
            strs.push(0);
        }
        let word = |w: &W| match w {
            W::N(n) => *n,
            W::S(i) => offs[*i],
        };
        let mut ty = Vec::new();
        for (name, info, size, extra) in types {
            let name_off = name.map_or(0, |i| offs[i]);
            for w in [name_off, *info, *size] {
                ty.extend_from_slice(&w.to_le_bytes());
            }
            for w in extra {
                ty.extend_from_slice(&word(w).to_le_bytes());
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            ty.len() as u32,
            ty.len() as u32,
            strs.len() as u32,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&ty);
        out.extend_from_slice(&strs);
        out
    }

    #[test]
    fn finds_direct_and_anonymous_members() {
        use W::{N, S};
        let btf = build(
            &["int", "outer", "a", "b", "do_thing"],
            &[
                // 1: int
                (Some(0), KIND_INT << 24, 4, vec![N(32)]),
                // 2: anonymous union { int b @0 }
                (None, (KIND_UNION << 24) | 1, 4, vec![S(3), N(1), N(0)]),
                // 3: const of the union, as some kernels emit for anonymous members
                (None, KIND_CONST << 24, 2, vec![]),
                // 4: struct outer { int a @0; const union {..} @64 }
                (
                    Some(1),
                    (KIND_STRUCT << 24) | 2,
                    16,
                    vec![S(2), N(1), N(0), N(0), N(3), N(64)],
                ),
                // 5: func do_thing
                (Some(4), KIND_FUNC << 24, 0, vec![]),
            ],
        );
        let btf = Btf::parse(&btf).expect("parse");
        assert_eq!(btf.member_offset("outer", "a"), Some(0));
        assert_eq!(btf.member_offset("outer", "b"), Some(8));
        assert_eq!(btf.member_offset("outer", "c"), None);
        assert_eq!(btf.member_offset("nope", "a"), None);
        assert_eq!(btf.struct_size("outer"), Some(16));
        assert!(btf.has_func("do_thing"));
        assert!(!btf.has_func("outer"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(&[0u8; 10]).is_err());
        assert!(Btf::parse(b"").is_err());
    }

    /// The running kernel's BTF, when there is one: the fields the programs need all resolve.
    #[test]
    fn host_vmlinux_has_the_fields_we_use() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            eprintln!("skipped: {} is absent on this kernel", path.display());
            return;
        }
        let btf = Btf::from_file(path).expect("parse vmlinux BTF");
        for (s, m) in [
            ("task_struct", "real_parent"),
            ("task_struct", "tgid"),
            ("task_struct", "mm"),
            ("mm_struct", "arg_start"),
            ("linux_binprm", "filename"),
            ("cgroup", "kn"),
            ("kernfs_node", "id"),
        ] {
            assert!(btf.member_offset(s, m).is_some(), "{s}.{m} not found");
        }
        assert!(btf.has_func("security_capable"));
    }
}
