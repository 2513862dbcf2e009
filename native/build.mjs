console.log("srlm: native addon build not configured yet");
