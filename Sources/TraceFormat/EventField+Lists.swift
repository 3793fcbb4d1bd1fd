/// The fields whose coding is more than one value: a number shown by its name, an exit's register
/// dump (coded against the vCPU's registers as the codec last saw them), a launch image's regions.
extension EventField {
    /// A byte shown by the name `name` gives it (a firmware state).
    static func named(_ column: String, _ key: WritableKeyPath<P, UInt8> & Sendable, _ name: @escaping @Sendable (UInt8) -> String) -> Self {
        let field = FieldAccess(key)
        return custom([.text(column) { name(field.get($0)) }], encode: { p, w, _ in w.u8(field.get(in: &p)) },
                      decode: { p, r, _ in field.set(&p, try r.u8()) })
    }
}

extension EventField where P == VMExit {
    /// The registers an exit shows the hypervisor, as columns `r0`… (NULL past those the exit has) of
    /// which the first `shown` are declared. Coded as their count, a mask of those that differ from the
    /// vCPU's registers as the chunk's events last showed them, and the differing values.
    static func exitRegisters(shown: Int) -> Self {
        custom((0..<shown).map { r in .optionalInt("r\(r)", .hexUnlessZero) { r < $0.registers.count ? $0.registers[r] : nil } },
               encode: { x, w, state in
            w.varint(UInt64(x.registers.count))
            state.switchRegisters(to: EventCodec.State.key(.vcpu(vm: x.vm, index: x.vcpu), vm: x.vm))
            // At most 32 registers (a reader refuses more): the changed ones, after a mask of which they are.
            let registers = x.registers.prefix(EventCodec.Registers.slots)
            var changed: UInt64 = 0
            for (i, r) in registers.enumerated() where state.registers.value[i] != r { changed |= 1 << UInt64(i) }
            w.varint(changed)
            for (i, r) in registers.enumerated() where changed & 1 << UInt64(i) != 0 {
                w.varint(r)
                state.registers.value[i] = r
            }
        }, decode: { x, r, state in
            let countOffset = r.offset
            let count = try r.varint()
            guard count <= UInt64(EventCodec.Registers.slots) else {
                throw EventDecodingError.invalidValue(offset: countOffset, what: "register count")
            }
            let maskOffset = r.offset
            let changed = try r.varint()
            guard changed >> count == 0 else { throw EventDecodingError.invalidValue(offset: maskOffset, what: "changed-register mask") }
            state.switchRegisters(to: EventCodec.State.key(.vcpu(vm: x.vm, index: x.vcpu), vm: x.vm))
            x.registers.reserveCapacity(Int(count))
            for i in 0..<Int(count) {
                if changed & 1 << UInt64(i) != 0 { state.registers.value[i] = try r.varint() }
                x.registers.append(state.registers.value[i])
            }
        })
    }
}

extension EventField where P == OwnerCheck {
    /// The image's regions, shown as `0xGPA+LENGTH,…`; coded as their count (at most
    /// ``TraceLimits/maxImageRegions``) and each region's address and length.
    static var imageRegions: Self {
        custom([.text("image") { $0.regions.map { "0x\(String($0.gpa, radix: 16))+\($0.length)" }.joined(separator: ",") }],
               encode: { o, w, _ in
            w.varint(UInt64(o.regions.count))
            for region in o.regions {
                w.varint(region.gpa)
                w.varint(region.length)
            }
        }, decode: { o, r, _ in
            let countOffset = r.offset
            let count = try r.varint()
            guard count <= UInt64(TraceLimits.maxImageRegions) else {
                throw EventDecodingError.invalidValue(offset: countOffset, what: "image region count")
            }
            for _ in 0..<count { o.regions.append(OwnerCheck.Region(gpa: try r.varint(), length: try r.varint())) }
        })
    }
}
