/// The detectors of data flow an analysis runs (nil: not selected). The taint engine calls them with what
/// it established on its way, typed, so that the hot path pays a nil check for a detector that is off
/// and a direct call for one that is on.
struct FlowDetectors {
    let privateToShared: PrivateToSharedDetector?
    let privateToDMA: PrivateToDMADetector?
    let hvPlaintext: HvPlaintextDetector?
    let ciphertextObservation: CiphertextObservationDetector?
    let dmaIntoPrivate: DmaIntoPrivateDetector?
    let hvWritePrivate: HvWritePrivateDetector?
    let encryptionMismatch: EncryptionMismatchDetector?
    let ciphertextReplay: CiphertextReplayDetector?
    let registerExposure: RegisterExposureDetector?
    let nptRemap: NptRemapDetector?
    let cbitAlias: CbitAliasDetector?

    /// The types of the detectors of data flow.
    static let types: [any EventDetector.Type] = [
        PrivateToSharedDetector.self, PrivateToDMADetector.self, HvPlaintextDetector.self, CiphertextObservationDetector.self,
        DmaIntoPrivateDetector.self, HvWritePrivateDetector.self, EncryptionMismatchDetector.self, CiphertextReplayDetector.self,
        RegisterExposureDetector.self, NptRemapDetector.self, CbitAliasDetector.self,
    ]

    init(context: AnalysisContext) {
        func make<D: EventDetector>(_ type: D.Type) -> D? {
            context.detectors.contains(D.detector) ? D(context: context) : nil
        }
        privateToShared = make(PrivateToSharedDetector.self)
        privateToDMA = make(PrivateToDMADetector.self)
        hvPlaintext = make(HvPlaintextDetector.self)
        ciphertextObservation = make(CiphertextObservationDetector.self)
        dmaIntoPrivate = make(DmaIntoPrivateDetector.self)
        hvWritePrivate = make(HvWritePrivateDetector.self)
        encryptionMismatch = make(EncryptionMismatchDetector.self)
        ciphertextReplay = make(CiphertextReplayDetector.self)
        registerExposure = make(RegisterExposureDetector.self)
        nptRemap = make(NptRemapDetector.self)
        cbitAlias = make(CbitAliasDetector.self)
    }
}
