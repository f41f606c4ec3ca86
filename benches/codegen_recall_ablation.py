"""Ablation behind benches/README-codegen.md: the retrieval model of the bench (32-d customer
and product id embeddings, dot product, in-batch softmax) trained by a bare TF loop under
recipe variants, test recall@100 (pessimistic ties, candidates = training products) after
each epoch. Not the generated trainer: it isolates one change at a time, fast.

  python codegen_recall_ablation.py DATA_DIR "opt=adam;lr=0.01;clip=1,opt=adam;lr=0.01;clip=1;logq=1"
keys: opt (adam|adagrad), lr, clip (1: clipnorm 1.0), bs, ep, t (temperature),
      logq (1: subtract log product frequency from every logit), red (mean|sum),
      ah (1: mask accidental hits, same product as the positive)
"""
import csv, os, sys, time, json
os.environ["TF_USE_LEGACY_KERAS"]="1"; os.environ["TF_CPP_MIN_LOG_LEVEL"]="2"
import numpy as np, tensorflow as tf
D=sys.argv[1]; variants=sys.argv[2].split(",")
def read(p):
    rows=list(csv.DictReader(open(p)))
    return np.array([r["customer_id"] for r in rows]), np.array([r["product_id"] for r in rows])
tc,tp=read(D+"/train/interactions.csv"); xc,xp=read(D+"/test/interactions.csv")
cust=np.unique(tc); prod=np.unique(tp)
ci={c:i+1 for i,c in enumerate(cust)}; pi={p:i+1 for i,p in enumerate(prod)}
tci=np.array([ci[c] for c in tc]); tpi=np.array([pi[p] for p in tp])
xci=np.array([ci.get(c,0) for c in xc]); xpi=np.array([pi.get(p,0) for p in xp])
cnt=np.bincount(tpi, minlength=len(prod)+1).astype(np.float32); logq=np.log(np.maximum(cnt,1)/cnt.sum())
def recall(U,V):
    s=U[xci]@V[1:].T; hits=0
    for i in range(len(xci)):
        r=xpi[i]-1
        if r>=0 and (s[i]>=s[i,r]).sum()-1<100: hits+=1
    return hits/len(xci)
for v in variants:
    cfg=dict(kv.split("=") for kv in v.split(";"))
    tf.keras.utils.set_random_seed(42)
    U=tf.Variable(tf.random.uniform([len(cust)+1,32],-0.05,0.05)); V=tf.Variable(tf.random.uniform([len(prod)+1,32],-0.05,0.05))
    opt={"adam":tf.keras.optimizers.Adam,"adagrad":tf.keras.optimizers.Adagrad}[cfg.get("opt","adam")](learning_rate=float(cfg.get("lr",0.01)), **({"clipnorm":1.0} if cfg.get("clip")=="1" else {}))
    B=int(cfg.get("bs",1024)); temp=float(cfg.get("t",1.0)); lq=cfg.get("logq")=="1"; red=cfg.get("red","mean"); ah=cfg.get("ah")=="1"
    LQ=tf.constant(logq)
    @tf.function
    def step(c,p):
        with tf.GradientTape() as tape:
            u=tf.gather(U,c); q=tf.gather(V,p)
            lg=tf.matmul(u,q,transpose_b=True)/temp
            if lq: lg=lg-tf.gather(LQ,p)[None,:]
            if ah:
                same=tf.cast(tf.equal(p[:,None],p[None,:]),tf.float32)-tf.eye(tf.shape(p)[0])
                lg=lg-1e9*same
            l=tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.range(tf.shape(c)[0]),logits=lg)
            l=tf.reduce_mean(l) if red=="mean" else tf.reduce_sum(l)
        g=tape.gradient(l,[U,V]); opt.apply_gradients(zip(g,[U,V])); return l
    rng=np.random.default_rng(42); out=[]
    t0=time.time()
    for e in range(int(cfg.get("ep",3))):
        perm=rng.permutation(len(tci))
        for s in range(0,len(perm),B):
            b=perm[s:s+B]; step(tf.constant(tci[b]),tf.constant(tpi[b]))
        out.append(round(recall(U.numpy(),V.numpy()),4))
    print("VARIANT",v,out,"%.1fs"%(time.time()-t0),flush=True)
