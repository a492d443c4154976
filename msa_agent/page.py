"""The page `msa serve` shows at `/`: one HTML file, no build step, no outside resources.

An ask box whose answer streams in (server-sent events of `POST /v1/ask`), the sources under it,
each opening a preview of its document (`GET /v1/documents/{id}`) at its page / line range / time
range with the quoted lines highlighted; a collection picker and the memory's status with the
ingest jobs (`GET /v1/status`, `GET /v1/jobs`, refreshed every few seconds). The token, when the
server wants one, is kept in the tab's sessionStorage only.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>msa</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#222;background:#fafaf7}
header{display:flex;align-items:baseline;gap:1rem;padding:.7rem 1.2rem;border-bottom:1px solid #ddd;background:#fff}
header h1{font-size:1.3rem;margin:0}header .dim{flex:1}
main{display:grid;grid-template-columns:minmax(0,1fr) 19rem;gap:1.2rem;max-width:72rem;margin:1rem auto;padding:0 1.2rem}
@media (max-width:52rem){main{grid-template-columns:1fr}}
section,aside>div{background:#fff;border:1px solid #e2e2dc;border-radius:6px;padding:.8rem 1rem;margin-bottom:1rem}
h2{font-size:1rem;margin:.1rem 0 .5rem}
input,textarea,button,select{font:inherit;padding:.4rem .5rem;border:1px solid #bbb;border-radius:4px;background:#fff}
button{background:#2a6fb0;color:#fff;border-color:#2a6fb0;cursor:pointer}button:disabled{opacity:.6;cursor:wait}
textarea{width:100%;height:4.2rem;resize:vertical}
.row{display:flex;gap:.5rem;margin:.4rem 0;align-items:center}.row>.grow{flex:1}
#answer{white-space:pre-wrap;border-left:3px solid #2a6fb0;padding:.3rem .8rem;min-height:1.6rem}
.cite{margin:.5rem 0}.cite a{color:#2a6fb0;text-decoration:none;font-weight:600}.cite a:hover{text-decoration:underline}
.cite pre{background:#f5f5f0;padding:.3rem .5rem;white-space:pre-wrap;margin:.2rem 0;font-size:.88em}
.dim{color:#777;font-size:.9em}.err{color:#b00020}
#preview{position:fixed;inset:6vh 8vw;background:#fff;border:1px solid #999;border-radius:6px;
  box-shadow:0 0 0 100vmax rgba(0,0,0,.3),0 8px 30px rgba(0,0,0,.25);display:none;flex-direction:column;z-index:10}
#preview.open{display:flex}
#preview .bar{display:flex;gap:.6rem;align-items:baseline;padding:.6rem 1rem;border-bottom:1px solid #ddd}
#preview .bar b{flex:1;overflow-wrap:anywhere}
#preview-text{margin:0;padding:.6rem 0;overflow:auto;flex:1;font:13px/1.5 ui-monospace,monospace;white-space:pre-wrap}
#preview-text .line{display:block;padding:0 1rem 0 0}#preview-text .n{display:inline-block;width:3.5em;
  padding-right:.8em;text-align:right;color:#999;user-select:none}
#preview-text mark{background:#ffe27a;padding:0}#preview-text .hl{background:#fff6c8}
dl{display:grid;grid-template-columns:auto 1fr;gap:.1rem .7rem;margin:0;font-size:.92em}dt{color:#666}dd{margin:0;overflow-wrap:anywhere}
ul{padding-left:1.1rem;margin:.2rem 0;font-size:.9em}li{margin:.25rem 0;overflow-wrap:anywhere}
.job-running,.job-queued{color:#8a5a00;font-weight:600}.job-error{color:#b00020}.job-ok{color:#276b2f}
</style></head><body>
<header><h1>msa</h1><span class="dim">memory agent</span>
<input id="token" type="password" placeholder="token (msa_…)" autocomplete="off" size="28"></header>
<main>
<div>
<section>
<div class="row"><label for="collection">Collection</label><select id="collection" class="grow"></select></div>
<textarea id="q" placeholder="Ask a question about the memory"></textarea>
<div class="row"><button id="ask">Ask</button><span id="status" class="dim"></span></div>
</section>
<section><h2>Answer</h2><div id="answer" data-tokens="0"></div></section>
<section><h2>Sources</h2><div id="sources"><p class="dim">Ask a question: its sources appear here.</p></div></section>
</div>
<aside>
<div><h2>Memory</h2><div id="memory" class="dim">loading…</div></div>
<div><h2>Ingest jobs</h2><div id="jobs" class="dim">none</div></div>
</aside>
</main>
<div id="preview" role="dialog" aria-modal="true" aria-labelledby="preview-title">
<div class="bar"><b id="preview-title"></b><span id="preview-where" class="dim"></span><button id="preview-close">Close</button></div>
<pre id="preview-text"></pre></div>
<script>
"use strict";
const $ = id => document.getElementById(id);
let AUTH = true, CITES = [];
$("token").value = sessionStorage.getItem("msa-token") || "";
function esc(s){const d=document.createElement("div");d.textContent=s==null?"":String(s);return d.innerHTML;}
function headers(json){const h={};if(json)h["Content-Type"]="application/json";
  const t=$("token").value.trim();if(t)h.Authorization="Bearer "+t;return h;}
async function getJSON(path){const r=await fetch(path,{headers:headers(false)});let body={};
  try{body=await r.json();}catch(e){}
  if(!r.ok)throw new Error(r.status+": "+((body.error||{}).message||r.statusText));return body;}
function fmt(n){return n==null?"–":Number(n).toLocaleString("en");}

function showCollections(colls){
  const sel=$("collection"),keep=sel.value,opts=[];
  if(!AUTH)opts.push(["","all collections"]);
  colls.forEach(c=>opts.push([c,c]));
  sel.innerHTML=opts.map(([v,l])=>'<option value="'+esc(v)+'">'+esc(l)+"</option>").join("");
  if(opts.some(([v])=>v===keep))sel.value=keep;
}
function showStatus(st){
  $("memory").classList.remove("dim","err");
  $("memory").innerHTML="<dl><dt>documents</dt><dd id=st-documents>"+fmt(st.documents)+"</dd><dt>tokens</dt><dd id=st-tokens>"+
    fmt(st.tokens)+"</dd><dt>chunks</dt><dd>"+fmt(st.chunks)+"</dd><dt>collections</dt><dd id=st-collections>"+
    esc(st.collections.join(", ")||"none")+"</dd><dt>model</dt><dd>"+esc(st.model||"–")+"</dd><dt>reader</dt><dd>"+
    esc(st.reader||"–")+"</dd></dl>";
}
function showJobs(ingest,scheduled){
  const items=ingest.slice().reverse().map(j=>{const p=j.progress||{};
    const files=p.files_total!=null?" "+p.files+"/"+p.files_total+" files":"";
    const why=j.error?" — "+esc(j.error):"";
    return '<li class="job" data-job="'+j.id+'"><span class="job-'+esc(j.status)+'">'+esc(j.status)+"</span> #"+j.id+" "+
      esc(j.path)+" ["+esc(j.collection)+"]"+files+why+"</li>";});
  scheduled.forEach(j=>items.push('<li class="sched">scheduled #'+j.id+" "+esc(j.dir)+" ["+esc(j.collection)+
    "] every "+esc(j.every_seconds)+" s; last run "+esc(j.last_status||"never")+"</li>"));
  $("jobs").classList.toggle("dim",!items.length);
  $("jobs").innerHTML=items.length?"<ul>"+items.join("")+"</ul>":"none";
}
async function refresh(){
  if(AUTH&&!$("token").value.trim()){$("memory").className="dim";
    $("memory").textContent="Enter a token (msa token create) to see this memory.";return;}
  try{
    const st=await getJSON("/v1/status");showStatus(st);showCollections(st.collections);
    const jobs=await getJSON("/v1/jobs");showJobs(jobs.jobs,st.jobs||[]);
  }catch(e){$("memory").classList.add("err");$("memory").textContent=e.message;}
}
function showSources(cites){
  CITES=cites;
  $("sources").innerHTML=cites.length?"":"<p class=dim>(none: the memory does not support an answer)</p>";
  cites.forEach((c,i)=>{const e=document.createElement("div");e.className="cite";
    e.innerHTML='<a href="#" class="cite-link" data-i="'+i+'">['+(i+1)+"] "+esc(c.path)+" — "+esc(c.anchor)+"</a>"+
      (c.quote?"<pre>"+esc(c.quote)+"</pre>":"");
    $("sources").appendChild(e);});
}
$("sources").addEventListener("click",ev=>{const a=ev.target.closest("a.cite-link");if(!a)return;
  ev.preventDefault();openPreview(CITES[Number(a.dataset.i)]);});

// The quoted lines of a citation within its document's text: where the quote occurs verbatim
// (it is always a substring), else the passage lines the server gave.
function quoteRange(text,c){
  if(!c.quote)return null;
  const at=text.indexOf(c.quote);
  if(at>=0){const first=text.slice(0,at).split("\\n").length;return [first,first+c.quote.split("\\n").length-1];}
  return c.quote_lines||null;
}
async function openPreview(c){
  $("preview-title").textContent=c.path;$("preview-where").textContent=c.anchor;
  $("preview-text").textContent="loading…";$("preview").classList.add("open");
  let doc;
  try{doc=await getJSON("/v1/documents/"+encodeURIComponent(c.doc_id));}
  catch(e){$("preview-text").textContent=e.message;return;}
  const lines=doc.text.split("\\n"),range=quoteRange(doc.text,c),a=doc.anchor_detail||{};
  // number lines as in the source file when the passage is a line range that its text spans whole
  const base=(a.line_start!=null&&a.line_end-a.line_start+1===lines.length)?a.line_start:1;
  $("preview-text").innerHTML=lines.map((ln,i)=>{const inq=range&&i+1>=range[0]&&i+1<=range[1];
    return '<span class="line'+(inq?" hl":"")+'"><span class="n">'+(base+i)+"</span>"+(inq?"<mark>"+esc(ln)+"</mark>":esc(ln))+"</span>";}).join("");
  const m=$("preview-text").querySelector("mark");if(m)m.scrollIntoView({block:"center"});
}
$("preview-close").onclick=()=>$("preview").classList.remove("open");
document.addEventListener("keydown",e=>{if(e.key==="Escape")$("preview").classList.remove("open");});

$("token").addEventListener("change",()=>{sessionStorage.setItem("msa-token",$("token").value.trim());refresh();});
$("q").addEventListener("keydown",e=>{if(e.key==="Enter"&&(e.ctrlKey||e.metaKey))$("ask").click();});
$("ask").onclick=async()=>{
  const body={question:$("q").value,stream:true};
  if($("collection").value)body.collection=$("collection").value;
  $("answer").textContent="";$("answer").dataset.tokens="0";showSources([]);
  $("sources").innerHTML="";$("status").className="dim";$("status").textContent="asking…";$("ask").disabled=true;
  try{
    const r=await fetch("/v1/ask",{method:"POST",headers:headers(true),body:JSON.stringify(body)});
    if(!r.ok){let m=r.statusText;try{m=(await r.json()).error.message;}catch(e){}throw new Error(r.status+": "+m);}
    const reader=r.body.getReader(),dec=new TextDecoder();let buf="";
    for(;;){
      const {value,done}=await reader.read();if(done)break;
      buf+=dec.decode(value,{stream:true});let i;
      while((i=buf.indexOf("\\n\\n"))>=0){
        const block=buf.slice(0,i);buf=buf.slice(i+2);
        const ev=(block.match(/^event: (.*)$/m)||[])[1],data=JSON.parse((block.match(/^data: (.*)$/m)||[])[1]);
        if(ev==="token"){$("answer").textContent+=data.text;$("answer").dataset.tokens=Number($("answer").dataset.tokens)+1;}
        else if(ev==="result"){$("answer").textContent=data.answer;showSources(data.citations);
          $("status").textContent=data.mode+" routing, "+data.rounds.length+" round(s), "+Math.round(data.timing.total_ms)+" ms";}
        else if(ev==="error")throw new Error(data.error.message);
      }
    }
  }catch(e){$("status").className="err";$("status").textContent="error: "+e.message;}
  finally{$("ask").disabled=false;refresh();}
};
fetch("/healthz").then(r=>r.json()).then(h=>{AUTH=h.auth!==false;refresh();setInterval(refresh,4000);});
</script></body></html>
"""
