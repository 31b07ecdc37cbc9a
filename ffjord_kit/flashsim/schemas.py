"""FlashSim variable schemas for jets and muons: names, order, roles and per-column preprocessing.

A FlashSim HDF5 row is `conditions` (gen-level) then `targets` (reco-level, expressed relative to
gen where the reference does: ratios, differences, wrapped phi differences). Column order,
counts and the squashing constants follow the FlashSim trainings page (REFERENCE.md section 2);
where the page gives no constant (the c of log(x + c), physical ranges) ours are marked "ours".

Per target column the spec says how it relates to a physical reco variable (`relation`,
`gen`), what the extraction clips to, and the model-space transform (`squash`, `kind` for
dequantisation of integers and booleans).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Column:
    """One column of a FlashSim row.

    name: column name; kind: "real", "int" (dequantised with 0.1 N(0,1), rounded after
    sampling) or "bool" (same noise, thresholded at 0.5).
    Targets only -- relation: "ratio" (reco / gen), "diff" (reco - gen) or "dphi" (reco - gen
    wrapped to [-pi, pi]) to condition column `gen` (`gen_transform` "log" when that column
    stores log(gen)); reco_name: the physical variable; clip: (lo, hi) applied at extraction and
    after sampling; negative_to: value that negative scores are set to (b-tag, qgl: -0.1);
    squash: ("atan", k, center) -> atan(k (x - center)) or ("log", c) -> log(x + c).
    Conditions only -- model_log: "log" or "log1p" before standardisation (ours: positive,
    steep gen variables such as pt and mass).
    """

    name: str
    kind: str = "real"
    relation: str | None = None
    gen: str | None = None
    gen_transform: str | None = None
    reco_name: str | None = None
    clip: tuple[float, float] | None = None
    negative_to: float | None = None
    squash: tuple | None = None
    model_log: str | None = None


@dataclass(frozen=True)
class Schema:
    """Conditions then targets, in file order."""

    kind: str
    conditions: tuple[Column, ...]
    targets: tuple[Column, ...]

    @property
    def n_conditions(self) -> int:
        return len(self.conditions)

    @property
    def n_targets(self) -> int:
        return len(self.targets)

    @property
    def n_columns(self) -> int:
        return self.n_conditions + self.n_targets

    @property
    def condition_names(self) -> list[str]:
        return [c.name for c in self.conditions]

    @property
    def target_names(self) -> list[str]:
        return [c.name for c in self.targets]

    def condition_index(self, name: str) -> int:
        return self.condition_names.index(name)

    def target_index(self, name: str) -> int:
        return self.target_names.index(name)


_BTAG = dict(negative_to=-0.1, clip=(-0.1, 1.0))


JETS = Schema(
    kind="jets",
    conditions=tuple(
        [Column(n) for n in ("MClosestMuon_dr", "MClosestMuon_pt", "MClosestMuon_deta",
                             "MClosestMuon_dphi", "MSecondClosestMuon_dr",
                             "MSecondClosestMuon_pt", "MSecondClosestMuon_deta",
                             "MSecondClosestMuon_dphi")]
        + [Column("GenJet_eta"), Column("GenJet_mass", model_log="log1p"), Column("GenJet_phi"),
           Column("GenJet_pt", model_log="log"), Column("GenJet_partonFlavour"),
           Column("GenJet_hadronFlavour")]),
    targets=(
        Column("Jet_area"),
        Column("Jet_btagCMVA", clip=(-1.0, 1.0)),
        Column("Jet_btagCSVV2", **_BTAG),
        Column("Jet_btagDeepB", **_BTAG),
        Column("Jet_btagDeepC", **_BTAG),
        Column("Jet_btagDeepFlavB", **_BTAG),
        Column("Jet_btagDeepFlavC", **_BTAG),
        Column("Jet_etaMinusGen", relation="diff", gen="GenJet_eta", reco_name="Jet_eta"),
        Column("Jet_bRegCorr"),
        Column("Jet_massRatio", relation="ratio", gen="GenJet_mass", reco_name="Jet_mass",
               clip=(0.0, 7.0)),
        Column("Jet_nConstituents", kind="int"),
        Column("Jet_phiMinusGen", relation="dphi", gen="GenJet_phi", reco_name="Jet_phi"),
        Column("Jet_ptRatio", relation="ratio", gen="GenJet_pt", reco_name="Jet_pt",
               clip=(0.0, 3.0)),
        Column("Jet_qgl", **_BTAG),
        Column("Jet_muEF", clip=(0.0, 1.0)),
        Column("Jet_puId", kind="int"),
        Column("Jet_jetId", kind="int"),
    ),
)

_STATUS_BITS = tuple(f"GenMuon_statusFlag{i}" for i in range(15))

MUONS = Schema(
    kind="muons",
    conditions=tuple(
        [Column("GenMuon_eta"), Column("GenMuon_phi"), Column("GenMuon_logpt"),
         Column("GenMuon_charge")]
        + [Column(n) for n in _STATUS_BITS]
        + [Column("ClosestJet_dr"), Column("ClosestJet_deta"), Column("ClosestJet_dphi"),
           Column("ClosestJet_log1ppt"), Column("ClosestJet_log1pmass"),
           Column("Pileup_gpudensity"), Column("Pileup_nPU"), Column("Pileup_nTrueInt"),
           Column("Pileup_pudensity"), Column("Pileup_logsumEOOT"),
           Column("Pileup_log1psumLOOT")]),
    targets=(
        Column("Muon_etaMinusGen", relation="diff", gen="GenMuon_eta", reco_name="Muon_eta",
               squash=("atan", 100.0, 0.0)),
        Column("Muon_phiMinusGen", relation="dphi", gen="GenMuon_phi", reco_name="Muon_phi",
               squash=("atan", 80.0, 0.0)),
        Column("Muon_ptRatio", relation="ratio", gen="GenMuon_logpt", gen_transform="log",
               reco_name="Muon_pt", squash=("atan", 10.0, 1.0), clip=(0.0, 5.0)),
        Column("Muon_dxy", squash=("atan", 150.0, 0.0)),
        Column("Muon_dxyErr", squash=("log", 1e-3)),
        Column("Muon_dz", squash=("atan", 50.0, 0.0)),
        Column("Muon_dzErr", squash=("log", 1e-3)),
        Column("Muon_ip3d", squash=("log", 1e-3)),
        Column("Muon_isGlobal", kind="bool"),
        Column("Muon_isPFcand", kind="bool"),
        Column("Muon_isTracker", kind="bool"),
        Column("Muon_jetPtRelv2", squash=("log", 1e-3)),
        Column("Muon_jetRelIso", squash=("log", 0.08)),
        Column("Muon_mediumId", kind="bool"),
        Column("Muon_pfRelIso03_all", squash=("log", 1e-3)),
        Column("Muon_pfRelIso03_chg", squash=("log", 1e-3)),
        Column("Muon_pfRelIso04_all", squash=("log", 1e-3)),
        Column("Muon_ptErr", squash=("log", 1e-3)),
        Column("Muon_sip3d", squash=("log", 1.0)),
        Column("Muon_softId", kind="bool"),
        Column("Muon_softMva", clip=(-1.0, 1.0)),
        Column("Muon_softMvaId", kind="bool"),
    ),
)

SCHEMAS = {"jets": JETS, "muons": MUONS}


def get_schema(kind: str) -> Schema:
    """The schema for `kind` ("jets" or "muons"); ConfigError naming the choices otherwise."""
    try:
        return SCHEMAS[kind]
    except KeyError:
        raise ConfigError(f"unknown FlashSim kind {kind!r}; choose from "
                          f"{sorted(SCHEMAS)}") from None
