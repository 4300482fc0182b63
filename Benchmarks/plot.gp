# Cold programming time against service count, one line per tool (log-log).
# gnuplot -e "data='plot.tsv'; output='benchmarks.png'" Benchmarks/plot.gp
# `data` is written by Benchmarks/report.py: services, then seconds per tool (NaN when not run).
set terminal pngcairo size 1000,640 font "sans,11" noenhanced
set output output
set title "Cold programming of services x 10 real servers: median wall time\n(emulated kernel, qemu TCG: compare the lines, not the absolute times)"
set xlabel "services (x 10 real servers each)"
set ylabel "seconds (log scale)"
set logscale xy
set xtics (1000, 3000, 10000, 30000, 100000) format "%.0f"
set format y "%g"
set grid xtics ytics mxtics mytics lc rgb "#dddddd"
set key bottom right box opaque
set datafile separator "\t"
set datafile missing "NaN"
stats data using 1 nooutput
set xrange [STATS_min / 1.5 : STATS_max * 1.5]
set style data linespoints
# Columns are picked by the names in the header line that report.py writes (its COLD_TOOLS keys).
plot data using 1:"floor" title "floor (C, libnl, batched)" lw 2 pt 7 lc rgb "#555555" dt 2, \
     data using 1:"floor-vips" title "floor + VIPs" lw 2 pt 6 lc rgb "#555555" dt 3, \
     data using 1:"ipvsctl" title "ipvsctl -R" lw 3 pt 5 lc rgb "#d62728", \
     data using 1:"ipvs-agent" title "ipvs-agent --once" lw 3 pt 9 lc rgb "#ff7f0e", \
     data using 1:"ipvsadm" title "ipvsadm -R" lw 2 pt 11 lc rgb "#1f77b4", \
     data using 1:"moby-ipvs" title "moby/ipvs, one request at a time" lw 2 pt 13 lc rgb "#2ca02c", \
     data using 1:"moby-ipvs-vips" title "moby/ipvs + VIPs, one request at a time" lw 2 pt 12 lc rgb "#2ca02c" dt 2, \
     data using 1:"moby-ipvs-kube-proxy" title "moby/ipvs, kube-proxy pattern" lw 2 pt 3 lc rgb "#9467bd"
