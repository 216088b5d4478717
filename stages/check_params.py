"""DVC stage `check-params`: validate all of params.yaml before any stage deletes its outputs."""

from aligntax import cli


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--out", default="data/params.ok", help="stamp every stage depends on (constant content)")
    args = p.parse_args()
    from aligntax.config import read_params
    from aligntax.io import write_atomic
    from aligntax.sections import check_params

    check_params(read_params(args.params))
    # Constant content: a valid change of params does not by itself re-run the stages after it.
    write_atomic(args.out, lambda tmp: tmp.write_text("params.yaml passed check-params\n"))


if __name__ == "__main__":
    cli.run(main)
