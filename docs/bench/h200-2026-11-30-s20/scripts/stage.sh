# stage the checkout as the harness needs it (kernels/ and models/ also inside vssm/)
S=/tmp/src; rm -rf $S; mkdir -p $S
cp -r vssm tools tests configs kernels models .official .gpu $S/
cp -r kernels $S/vssm/kernels; cp -r models $S/vssm/models
cd $S; export PYTHONPATH=$S
